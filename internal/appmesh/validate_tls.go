package appmesh

import (
	"strings"
	"unicode/utf8"
)

// TLS rules (spec §1.3, §1.6, §1.8.3, §7.3); see validate.go.

// ----- TLS ------------------------------------------------------------------

func (v *validator) listenerTLS(p string, t *ListenerTLS) {
	if c := t.Certificate; v.required(join(p, "certificate"), c != nil) {
		cp := join(p, "certificate")
		v.exactlyOne(cp, member{"acm", c.ACM != nil}, member{"file", c.File != nil}, member{"sds", c.SDS != nil})
		if c.ACM != nil {
			v.reqString(join(cp, "acm.certificateArn"), c.ACM.CertificateARN, 0)
		}
		if c.File != nil {
			v.fileCertificate(join(cp, "file"), c.File)
		}
		if c.SDS != nil {
			v.reqString(join(cp, "sds.secretName"), c.SDS.SecretName, 0)
		}
	}
	v.enum(join(p, "mode"), t.Mode, true, tlsModes...)
	if val := t.Validation; val != nil {
		vp := join(p, "validation")
		// No wildcard rule here: §7.3 restricts only client policies.
		v.subjectAlternativeNames(join(vp, "subjectAlternativeNames"), val.SubjectAlternativeNames, false)
		if tr := val.Trust; v.required(join(vp, "trust"), tr != nil) {
			tp := join(vp, "trust")
			v.exactlyOne(tp, member{"file", tr.File != nil}, member{"sds", tr.SDS != nil})
			v.fileTrust(join(tp, "file"), tr.File)
			v.sdsTrust(join(tp, "sds"), tr.SDS)
		}
	}
}

func (v *validator) fileCertificate(p string, f *ListenerTLSFileCertificate) {
	v.reqString(join(p, "certificateChain"), f.CertificateChain, 255)
	v.reqString(join(p, "privateKey"), f.PrivateKey, 255)
}

func (v *validator) fileTrust(p string, f *TLSValidationContextFileTrust) {
	if f != nil {
		v.reqString(join(p, "certificateChain"), f.CertificateChain, 255)
	}
}

func (v *validator) sdsTrust(p string, s *TLSValidationContextSDSTrust) {
	if s != nil {
		v.reqString(join(p, "secretName"), s.SecretName, 0)
	}
}

func (v *validator) clientPolicy(p string, c *ClientPolicy) {
	if c.TLS != nil {
		v.clientPolicyTLS(join(p, "tls"), c.TLS)
	}
}

func (v *validator) clientPolicyTLS(p string, t *ClientPolicyTLS) {
	if c := t.Certificate; c != nil {
		cp := join(p, "certificate")
		v.exactlyOne(cp, member{"file", c.File != nil}, member{"sds", c.SDS != nil})
		if c.File != nil {
			v.fileCertificate(join(cp, "file"), c.File)
		}
		if c.SDS != nil {
			v.reqString(join(cp, "sds.secretName"), c.SDS.SecretName, 0)
		}
	}
	for i := range t.Ports {
		v.port(index(join(p, "ports"), i), &t.Ports[i])
	}
	if val := t.Validation; v.required(join(p, "validation"), val != nil) {
		vp := join(p, "validation")
		enforced := t.Enforce == nil || *t.Enforce
		v.subjectAlternativeNames(join(vp, "subjectAlternativeNames"), val.SubjectAlternativeNames, enforced)
		if tr := val.Trust; v.required(join(vp, "trust"), tr != nil) {
			tp := join(vp, "trust")
			v.exactlyOne(tp, member{"acm", tr.ACM != nil}, member{"file", tr.File != nil}, member{"sds", tr.SDS != nil})
			if tr.ACM != nil {
				ap := join(tp, "acm.certificateAuthorityArns")
				arns := tr.ACM.CertificateAuthorityARNs
				if v.required(ap, len(arns) > 0) {
					if len(arns) > 3 {
						v.add(ap, "must have between 1 and 3 items, got %d", len(arns))
					}
					for i, a := range arns {
						v.reqString(index(ap, i), a, 0)
					}
				}
			}
			v.fileTrust(join(tp, "file"), tr.File)
			v.sdsTrust(join(tp, "sds"), tr.SDS)
		}
	}
}

// subjectAlternativeNames checks a SAN list; noWildcards is set for a
// client policy that enforces TLS (spec §7.3).
func (v *validator) subjectAlternativeNames(p string, s *SubjectAlternativeNames, noWildcards bool) {
	if s == nil {
		return
	}
	if !v.required(join(p, "match"), s.Match != nil) {
		return
	}
	ep := join(p, "match.exact")
	if !v.required(ep, len(s.Match.Exact) > 0) {
		return
	}
	for i, san := range s.Match.Exact {
		ip := index(ep, i)
		if n := utf8.RuneCountInString(san); n < 1 || n > 254 {
			v.add(ip, "must be between 1 and 254 characters long, got %d", n)
		}
		if noWildcards && strings.Contains(san, "*") {
			v.add(ip, "wildcard subject alternative name %q is not allowed in a client policy that enforces TLS (enforce is true or unset): list the exact names, or set enforce to false", san)
		}
	}
}

// GatewayClientPolicyTLS converts a virtual gateway's client policy to a
// virtual node's: the members are the same.
func GatewayClientPolicyTLS(t *VirtualGatewayClientPolicyTLS) *ClientPolicyTLS {
	if t == nil {
		return nil
	}
	out := &ClientPolicyTLS{Enforce: t.Enforce, Ports: t.Ports}
	if c := t.Certificate; c != nil {
		out.Certificate = &ClientTLSCertificate{File: (*ListenerTLSFileCertificate)(c.File), SDS: (*ListenerTLSSDSCertificate)(c.SDS)}
	}
	if val := t.Validation; val != nil {
		out.Validation = &TLSValidationContext{SubjectAlternativeNames: val.SubjectAlternativeNames}
		if tr := val.Trust; tr != nil {
			out.Validation.Trust = &TLSValidationContextTrust{
				ACM:  (*TLSValidationContextACMTrust)(tr.ACM),
				File: (*TLSValidationContextFileTrust)(tr.File),
				SDS:  (*TLSValidationContextSDSTrust)(tr.SDS),
			}
		}
	}
	return out
}

// GatewayListenerTLS converts a virtual gateway listener's TLS to a
// virtual node listener's.
func GatewayListenerTLS(t *VirtualGatewayListenerTLS) *ListenerTLS {
	if t == nil {
		return nil
	}
	out := &ListenerTLS{Mode: t.Mode}
	if c := t.Certificate; c != nil {
		out.Certificate = &ListenerTLSCertificate{
			ACM:  (*ListenerTLSACMCertificate)(c.ACM),
			File: (*ListenerTLSFileCertificate)(c.File),
			SDS:  (*ListenerTLSSDSCertificate)(c.SDS),
		}
	}
	if val := t.Validation; val != nil {
		out.Validation = &ListenerTLSValidationContext{SubjectAlternativeNames: val.SubjectAlternativeNames}
		if tr := val.Trust; tr != nil {
			out.Validation.Trust = &ListenerTLSValidationContextTrust{
				File: (*TLSValidationContextFileTrust)(tr.File),
				SDS:  (*TLSValidationContextSDSTrust)(tr.SDS),
			}
		}
	}
	return out
}
