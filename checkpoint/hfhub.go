package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/vitbert/vitbert/safetensors"
)

// The Hugging Face cache is resolved here rather than with
// github.com/gomlx/go-huggingface: its hub.Repo asks the Hub's API for the
// revision's commit before it reads a cached file, so it cannot resolve
// refs/main offline, and downloading is not something vitbert does.

// hubID matches ORG/NAME or NAME, with an optional @REVISION.
var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?(@[A-Za-z0-9_./-]+)?$`)

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// HubCacheDir is the Hugging Face hub cache, as huggingface_hub finds it:
// $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
// else ~/.cache/huggingface/hub.
func HubCacheDir() string {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(d, "hub")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "huggingface", "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "huggingface", "hub")
	}
	return filepath.Join(home, ".cache", "huggingface", "hub")
}

// ResolveModelDir turns a --model argument into a directory. An existing
// directory is returned as it is. Otherwise a Hub id, ORG/NAME[@REVISION]
// (revision "main" by default: a branch or tag name, read from refs/, or a
// commit hash), is looked up in the local Hugging Face cache
// (HubCacheDir()/models--ORG--NAME/snapshots/COMMIT). vitbert never
// downloads: a model that is not in the cache is an error saying where it
// looked and how to fetch it.
func ResolveModelDir(arg string) (string, error) {
	if arg == "" {
		return "", errors.New("no model given")
	}
	st, err := os.Stat(arg)
	if err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("model %s is a file; give its directory (config.json + model.safetensors)", arg)
		}
		return arg, nil
	}
	if !hubID.MatchString(arg) || strings.Contains(arg, "..") {
		return "", fmt.Errorf("loading model: no directory %s", arg)
	}
	id, rev, _ := strings.Cut(arg, "@")
	if rev == "" {
		rev = "main"
	}
	cache := HubCacheDir()
	repo := filepath.Join(cache, "models--"+strings.ReplaceAll(id, "/", "--"))
	notCached := func(why string) error {
		offline := ""
		if v := os.Getenv("HF_HUB_OFFLINE"); v != "" && v != "0" {
			offline = " (HF_HUB_OFFLINE is set)"
		}
		return fmt.Errorf("model %s: no directory of that name, and %s in the Hugging Face cache %s%s; "+
			"vitbert reads the cache but does not download from the Hub: run `hf download %s` (or huggingface-cli download) "+
			"where huggingface.co is reachable, set HF_HOME to the cache that holds it, or pass a directory",
			arg, why, cache, offline, id)
	}
	if _, err := os.Stat(repo); err != nil {
		return "", notCached("not found (looked for " + filepath.Base(repo) + ")")
	}
	commit := rev
	if !commitHash.MatchString(rev) {
		raw, err := os.ReadFile(filepath.Join(repo, "refs", filepath.FromSlash(rev)))
		if err != nil {
			return "", notCached(fmt.Sprintf("revision %q is not recorded (no %s)", rev, filepath.Join(filepath.Base(repo), "refs", rev)))
		}
		commit = strings.TrimSpace(string(raw))
	}
	snap := filepath.Join(repo, "snapshots", commit)
	if st, err := os.Stat(snap); err != nil || !st.IsDir() {
		var have []string
		entries, _ := os.ReadDir(filepath.Join(repo, "snapshots"))
		for _, e := range entries {
			have = append(have, e.Name())
		}
		return "", notCached(fmt.Sprintf("revision %s (commit %s) has no snapshot (snapshots present: %v)", rev, commit, have))
	}
	return snap, nil
}

// readWeights reads a model directory's weights: model.safetensors, or the
// shards listed in model.safetensors.index.json. A directory with only
// PyTorch, TensorFlow or Flax weights gets an error saying how to convert them.
func readWeights(dir string) (*safetensors.File, error) {
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err == nil {
		return safetensors.ReadFile(single)
	}
	index := filepath.Join(dir, "model.safetensors.index.json")
	if _, err := os.Stat(index); err == nil {
		return readSharded(index)
	}
	for _, other := range []string{"pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack"} {
		if _, err := os.Stat(filepath.Join(dir, other)); err == nil {
			return nil, fmt.Errorf("%s has weights only in %s, which vitbert does not read (pickle/HDF5/msgpack); convert them to safetensors, e.g. in Python: "+
				"transformers.AutoModel.from_pretrained(DIR).save_pretrained(OUT, safe_serialization=True)", dir, other)
		}
	}
	return nil, fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json", dir)
}

// readSharded reads the shards an index names and merges their tensors,
// checking that each tensor the index lists is in its shard and that no
// tensor appears twice.
func readSharded(index string) (*safetensors.File, error) {
	raw, err := os.ReadFile(index)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %w", index, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: empty weight_map", index)
	}
	shards := map[string][]string{}
	for name, shard := range idx.WeightMap {
		if shard == "" || filepath.IsAbs(shard) || strings.Contains(shard, "..") || strings.ContainsAny(shard, `/\`) {
			return nil, fmt.Errorf("%s: tensor %q names shard %q, not a file beside the index", index, name, shard)
		}
		shards[shard] = append(shards[shard], name)
	}
	names := slices.Sorted(maps.Keys(shards))
	dir := filepath.Dir(index)
	merged := &safetensors.File{Path: index, Tensors: map[string]*safetensors.Tensor{}}
	for _, s := range names {
		f, err := safetensors.ReadFile(filepath.Join(dir, s))
		if err != nil {
			return nil, fmt.Errorf("shard of %s: %w", index, err)
		}
		for _, name := range shards[s] {
			if _, ok := f.Tensors[name]; !ok {
				return nil, fmt.Errorf("%s: the index puts tensor %q in %s, which does not hold it", index, name, s)
			}
		}
		for name, t := range f.Tensors {
			if where, ok := idx.WeightMap[name]; !ok || where != s {
				return nil, fmt.Errorf("%s: shard %s holds tensor %q, which the index does not put there", index, s, name)
			}
			merged.Tensors[name] = t
		}
		if merged.Metadata == nil {
			merged.Metadata = f.Metadata
		}
	}
	return merged, nil
}
