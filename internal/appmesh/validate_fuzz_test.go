package appmesh_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshd/meshd/internal/appmesh"
)

// FuzzValidate decodes arbitrary bytes as the spec of every kind; whatever
// decodes must validate without panicking (Validate turns a panic into a
// problem starting "internal error", which fails here), deterministically,
// with every problem carrying a message and a well-formed path.
func FuzzValidate(f *testing.F) {
	for _, tc := range validateCases {
		f.Add([]byte(tc.spec))
	}
	docs, _ := exampleDocs(f)
	for _, d := range docs {
		f.Add([]byte(d.Spec))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, kind := range appmesh.ResourceKinds() {
			spec, err := appmesh.DecodeSpec(kind, data)
			if err != nil {
				continue
			}
			got := appmesh.Validate(kind, spec)
			for _, e := range got {
				if e == nil || e.Msg == "" {
					t.Fatalf("%s: empty problem %v", kind, e)
				}
				if strings.Contains(e.Msg, "internal error") {
					t.Fatalf("%s: %v\n%s", kind, e, data)
				}
				if strings.HasPrefix(e.Path, ".") || strings.HasSuffix(e.Path, ".") || strings.Contains(e.Path, "..") {
					t.Errorf("%s: malformed path %q", kind, e.Path)
				}
			}
			again := appmesh.Validate(kind, spec)
			if len(again) != len(got) {
				t.Fatalf("%s: %d problems, then %d", kind, len(got), len(again))
			}
			for i := range got {
				if *got[i] != *again[i] {
					t.Fatalf("%s: problem %d is %v, then %v", kind, i, got[i], again[i])
				}
			}
		}
	})
}

// FuzzCheckRegex: CheckRegex must not panic, and what it accepts is 1–255
// characters that Go's regexp (RE2 semantics) compiles.
func FuzzCheckRegex(f *testing.F) {
	for _, s := range []string{
		`^/api/v[0-9]+/.*$`, `(?i)^prefix`, `(?P<name>a)(?<other>b)`, `prefix[^0-9]?suffix`, `ex(amp){0}le`,
		`\\1`, `\012`, `[(?=]`, `(?=example)`, `ex(?!ample)`, `(?<=a)b`, `(?<!a)b`, `^(a+)-\1$`, `[a-`,
		`a{1001}`, `*a`, "\xff", `^prefix(?!suffix)`, `/colou?r`, `^[a-z]+\.example\.com$`, `\p{Greek}+`,
		`(a|b)*c{2,5}?`, `\Qa.b\E`, `[[:alpha:]]`, `\b\B\A\z`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, re string) {
		if appmesh.CheckRegex(re) != nil {
			return
		}
		if n := utf8.RuneCountInString(re); n < 1 || n > 255 {
			t.Errorf("CheckRegex accepted %q of %d characters", re, n)
		}
		if _, err := regexp.Compile(re); err != nil {
			t.Errorf("CheckRegex accepted %q, regexp.Compile: %v", re, err)
		}
	})
}
