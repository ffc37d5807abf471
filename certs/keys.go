package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeyType names a key algorithm meshd can generate.
type KeyType string

// Supported key types.
const (
	KeyECDSAP256 KeyType = "ecdsa-p256"
	KeyEd25519   KeyType = "ed25519"
	KeyRSA2048   KeyType = "rsa-2048"
	KeyRSA3072   KeyType = "rsa-3072"
)

// KeyTypes lists every supported key type, default first.
var KeyTypes = []KeyType{KeyECDSAP256, KeyEd25519, KeyRSA2048, KeyRSA3072}

// ParseKeyType parses a --*-key-type flag value.
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	names := make([]string, len(KeyTypes))
	for i, k := range KeyTypes {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown key type %q (want one of %s)", s, strings.Join(names, ", "))
}

// Generate creates a new private key of this type.
func (k KeyType) Generate() (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("unknown key type %q", string(k))
}

// keyTypeOf reports the KeyType of an existing public key.
func keyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return KeyECDSAP256, nil
		}
		return "", fmt.Errorf("ECDSA curve %s is not supported (use P-256)", p.Curve.Params().Name)
	case ed25519.PublicKey:
		return KeyEd25519, nil
	case *rsa.PublicKey:
		switch p.N.BitLen() {
		case 2048:
			return KeyRSA2048, nil
		case 3072:
			return KeyRSA3072, nil
		}
		if p.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits is too weak (minimum 2048)", p.N.BitLen())
		}
		return KeyType(fmt.Sprintf("rsa-%d", p.N.BitLen())), nil
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}
