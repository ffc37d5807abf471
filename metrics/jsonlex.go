package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// lexer is a small JSON reader for Envoy's admin output, which the
// collector parses on every cycle (≈ 2 MB for 1,000 active clusters): it
// walks the bytes once, without reflection, and allocates only the names
// it keeps. Its results are checked against encoding/json by FuzzParseStats.
type lexer struct {
	b []byte
	i int
}

var errSyntax = errors.New("invalid JSON")

func (l *lexer) errf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s: %w", l.i, fmt.Sprintf(format, args...), errSyntax)
}

func (l *lexer) ws() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (l *lexer) peek() byte {
	l.ws()
	if l.i < len(l.b) {
		return l.b[l.i]
	}
	return 0
}

func (l *lexer) expect(c byte) error {
	if l.peek() != c {
		return l.errf("want %q", c)
	}
	l.i++
	return nil
}

// object calls fn for each member with the key's raw (unescaped when it
// has no escapes) bytes; fn must consume the value.
func (l *lexer) object(fn func(key []byte) error) error {
	if err := l.expect('{'); err != nil {
		return err
	}
	if l.peek() == '}' {
		l.i++
		return nil
	}
	for {
		k, err := l.rawString()
		if err != nil {
			return err
		}
		if err := l.expect(':'); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.i++
		case '}':
			l.i++
			return nil
		default:
			return l.errf("want , or }")
		}
	}
}

func (l *lexer) array(fn func() error) error {
	if err := l.expect('['); err != nil {
		return err
	}
	if l.peek() == ']' {
		l.i++
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.i++
		case ']':
			l.i++
			return nil
		default:
			return l.errf("want , or ]")
		}
	}
}

// rawString reads a string and returns its contents, decoded.
func (l *lexer) rawString() ([]byte, error) {
	if l.peek() != '"' {
		return nil, l.errf("want string")
	}
	start := l.i
	l.i++
	escaped := false
	for l.i < len(l.b) {
		c := l.b[l.i]
		switch {
		case c == '\\':
			escaped = true
			l.i += 2
			continue
		case c == '"':
			l.i++
			if !escaped {
				s := l.b[start+1 : l.i-1]
				if !utf8.Valid(s) {
					return []byte(string([]rune(string(s)))), nil // as encoding/json: invalid bytes become U+FFFD
				}
				return s, nil
			}
			u, ok := unescape(l.b[start+1 : l.i-1])
			if !ok {
				return nil, l.errf("bad string escape")
			}
			return u, nil
		case c < 0x20:
			return nil, l.errf("control character in string")
		}
		l.i++
	}
	return nil, l.errf("unterminated string")
}

func (l *lexer) str() (string, error) {
	b, err := l.rawString()
	return string(b), err
}

// number reads a JSON number.
func (l *lexer) number() (float64, error) {
	l.ws()
	start := l.i
	for l.i < len(l.b) {
		c := l.b[l.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			l.i++
			continue
		}
		break
	}
	if start == l.i || !validNumber(l.b[start:l.i]) {
		return 0, l.errf("want number")
	}
	v, err := strconv.ParseFloat(string(l.b[start:l.i]), 64)
	if err != nil {
		return 0, l.errf("number %s out of range", l.b[start:l.i])
	}
	return v, nil
}

// validNumber checks JSON's number grammar (which is stricter than
// ParseFloat's: no leading '+', no "1.", no ".5", no leading zeros).
func validNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s)
}

func (l *lexer) literal(word string) error {
	l.ws()
	if len(l.b)-l.i < len(word) || string(l.b[l.i:l.i+len(word)]) != word {
		return l.errf("want %s", word)
	}
	l.i += len(word)
	return nil
}

// skip consumes any value.
func (l *lexer) skip() error {
	switch c := l.peek(); {
	case c == '{':
		return l.object(func([]byte) error { return l.skip() })
	case c == '[':
		return l.array(l.skip)
	case c == '"':
		_, err := l.rawString()
		return err
	case c == 't':
		return l.literal("true")
	case c == 'f':
		return l.literal("false")
	case c == 'n':
		return l.literal("null")
	default:
		_, err := l.number()
		return err
	}
}

// end checks nothing but space follows.
func (l *lexer) end() error {
	if l.ws(); l.i < len(l.b) {
		return l.errf("trailing data")
	}
	return nil
}

// unescape decodes a JSON string body with escapes, as encoding/json does
// (lone surrogates and invalid UTF-8 become U+FFFD).
func unescape(s []byte) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			r, n := utf8.DecodeRune(s[i:])
			out = utf8.AppendRune(out, r)
			i += n
			continue
		}
		if i+1 >= len(s) {
			return nil, false
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				return nil, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s[min(i+3, len(s)):]); ok && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						i += 7
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
		i++
	}
	return out, true
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
