package registryauth

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

// secretLike is what the fuzzer's secrets look like for the no-secret
// check: long enough, and made of characters no message of Parse's is made
// of alone.
var secretLike = regexp.MustCompile(`^[A-Za-z0-9]{10,64}$`)

// FuzzParse feeds Parse arbitrary documents (seeded from
// testdata/fuzz/FuzzParse): it never panics, a parsed config has every
// "auth" decoded, and a document with a secret in any value position never
// gets that secret quoted in an error.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"auths":{"r:5000":{"auth":"YWxpY2U6cHc="}}}`), "s3cretValue1")
	f.Add([]byte(`{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}`), "0123456789ab")
	f.Fuzz(func(t *testing.T, data []byte, secret string) {
		c, err := Parse(data)
		if err == nil {
			for k, e := range c.Auths {
				if e.Auth != "" {
					t.Fatalf("auths[%q].auth left undecoded", k)
				}
			}
		}
		if !secretLike.MatchString(secret) || !strings.ContainsAny(secret, "0123456789") {
			return
		}
		for _, doc := range []string{
			`{"auths":{"r":{"auth":"` + secret + `"}}}`,
			`{"auths":{"r":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(secret)) + `"}}}`,
			`{"auths":{"r":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("u:"+secret)) + `"}},"credsStore":"a/b"}`,
			`{"auths":{"r":{"password":` + secret + `}}}`,
			`{"auths":{"r":{"password":["` + secret + `"]}}}`,
			`{"auths":{"r":{"identitytoken":"` + secret + `"}},` + string(data),
			string(data) + `{"auths":{"r":{"registrytoken":"` + secret + `"}}}`,
		} {
			if _, err := Parse([]byte(doc)); err != nil && strings.Contains(err.Error(), secret) && !strings.Contains(string(data), secret) {
				t.Fatalf("the error quotes the secret: %v", err)
			}
		}
	})
}
