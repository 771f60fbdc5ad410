package atomicfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func names(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return strings.Join(out, ",")
}

// A write that fails part-way leaves the previous content and no temporary
// behind; a complete one replaces it.
func TestWriteFileReplacesOnlyWhenComplete(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, func(w io.Writer) error {
		w.Write(make([]byte, 3<<20)) // more than the buffer: some reaches the temporary file
		return errors.New("disk full")
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want the write's error naming the file", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" || names(t, dir) != "f.json" {
		t.Fatalf("after a failed write: content %q, directory %s", b, names(t, dir))
	}
	if err := WriteBytes(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	if b, _ := os.ReadFile(path); string(b) != "new" || names(t, dir) != "f.json" || info.Mode().Perm() != 0o644 {
		t.Fatalf("after a write: content %q, directory %s, mode %v", b, names(t, dir), info.Mode())
	}
}

func TestWriteDirReplacesOnlyWhenComplete(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "model")
	fill := func(content string) func(string) error {
		return func(tmp string) error {
			if err := os.Mkdir(filepath.Join(tmp, "sub"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(tmp, "sub", "a.txt"), []byte(content), 0o644)
		}
	}
	if err := WriteDir(dir, fill("one")); err != nil {
		t.Fatal(err)
	}
	err := WriteDir(dir, func(tmp string) error {
		if err := fill("two")(tmp); err != nil {
			return err
		}
		return errors.New("disk full")
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v, want the fill's error naming the directory", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sub", "a.txt")); string(b) != "one" || names(t, parent) != "model" {
		t.Fatalf("after a failed write: content %q, parent holds %s", b, names(t, parent))
	}
	if err := WriteDir(dir, fill("two")); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "sub", "a.txt")); string(b) != "two" || names(t, parent) != "model" || info.Mode().Perm() != 0o755 {
		t.Fatalf("after a write: content %q, parent holds %s, mode %v", b, names(t, parent), info.Mode())
	}
	// The parent is created when missing.
	deep := filepath.Join(parent, "x", "y", "model")
	if err := WriteDir(deep, fill("three")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(deep, "sub", "a.txt")); string(b) != "three" {
		t.Fatalf("content %q", b)
	}
}
