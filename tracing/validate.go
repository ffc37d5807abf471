package tracing

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validatable is what protoc-gen-validate generates for every Envoy message.
type validatable interface{ ValidateAll() error }

// Validate runs the generated ValidateAll of msg and, because those stop at
// google.protobuf.Any, of every typed config inside it (tracers, sinks,
// access loggers, protocol options, transport sockets), recursively. An Any
// whose type is not linked into meshd is an error: it could not be checked.
func Validate(msg proto.Message) error {
	return validateAt(msg.ProtoReflect(), string(msg.ProtoReflect().Descriptor().Name()))
}

func validateAt(m protoreflect.Message, path string) error {
	if v, ok := m.Interface().(validatable); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return rangeAnys(m, path)
}

func validateNested(m protoreflect.Message, path string) error {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		// The parent's ValidateAll already covered this message's own
		// rules; recurse only to find typed configs below it.
		return rangeAnys(m, path)
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return fmt.Errorf("%s: typed config %q: %w", path, a.GetTypeUrl(), err)
	}
	return validateAt(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().FullName())+">")
}

// rangeAnys walks the message fields of m (whose own rules are checked),
// validating every typed config below it.
func rangeAnys(m protoreflect.Message, path string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		p := path + "." + fd.JSONName()
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = validateNested(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = validateNested(mv.Message(), fmt.Sprintf("%s[%q]", p, k.String()))
				return err == nil
			})
		default:
			err = validateNested(v.Message(), p)
		}
		return err == nil
	})
	return err
}
