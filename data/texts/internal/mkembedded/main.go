// Command mkembedded rebuilds the default data embedded in package texts
// from fetched sources:
//
//	go run ./data/texts/internal/mkembedded -fetch -data data/cache
//
// corpus.tar.gz holds Moby Dick chapters from the first until 600 kB of
// text, then State of the Union addresses from the most recent back until
// another 400 kB. spamassassin.tar.gz holds the SpamAssassin messages of
// every group except easy-ham-2 (left out to keep the archive small and the
// classes closer to balance) as the first 1,500 characters of the body, cut
// at a word boundary, in the fetched train/test split.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vitbert/vitbert/data/texts"
)

const (
	mobyBytes   = 600_000
	sotuBytes   = 400_000
	bodyChars   = 1500
	spamSetName = "spamassassin"
)

func main() {
	dataDir := flag.String("data", "data/cache", "folder of fetched data sets")
	out := flag.String("out", "data/texts/embedded", "output folder")
	fetch := flag.Bool("fetch", false, "fetch spamassassin, sotu and moby-dick first")
	flag.Parse()
	if *fetch {
		for _, n := range []string{spamSetName, "sotu", "moby-dick"} {
			if err := texts.Fetch(n, *dataDir, os.Stderr); err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := corpus(*dataDir, filepath.Join(*out, "corpus.tar.gz")); err != nil {
		log.Fatal(err)
	}
	if err := labelled(*dataDir, filepath.Join(*out, "spamassassin.tar.gz")); err != nil {
		log.Fatal(err)
	}
}

type entry struct{ name, text string }

func glob(dir, pattern string) []string {
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		log.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func corpus(dataDir, dst string) error {
	var es []entry
	total := 0
	for _, p := range glob(filepath.Join(dataDir, "moby-dick"), "chapter_*.txt") {
		if total >= mobyBytes {
			break
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		es = append(es, entry{"moby-dick/" + filepath.Base(p), string(b)})
		total += len(b)
	}
	sotu := glob(filepath.Join(dataDir, "sotu"), "*.txt")
	for i, n := len(sotu)-1, 0; i >= 0 && n < sotuBytes; i-- {
		b, err := os.ReadFile(sotu[i])
		if err != nil {
			return err
		}
		es = append(es, entry{"sotu/" + filepath.Base(sotu[i]), string(b)})
		n += len(b)
		total += len(b)
	}
	fmt.Fprintf(os.Stderr, "corpus: %d files, %d bytes of text\n", len(es), total)
	return writeTarGz(dst, es)
}

// truncate keeps at most n characters of s, cutting at the last space
// before the limit when there is one.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	cut := string(r[:n])
	if i := strings.LastIndexAny(cut, " \n\t"); i > n/2 {
		cut = cut[:i]
	}
	return strings.TrimSpace(cut)
}

func labelled(dataDir, dst string) error {
	root := filepath.Join(dataDir, spamSetName)
	var es []entry
	total := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".txt" {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(filepath.Base(p), "easy-ham-2-") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		t := truncate(strings.TrimSpace(string(b)), bodyChars)
		if t == "" {
			return nil // an empty body carries no label signal
		}
		es = append(es, entry{filepath.ToSlash(rel), t + "\n"})
		total += len(t)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "labelled: %d files, %d bytes of text\n", len(es), total)
	return writeTarGz(dst, es)
}

// writeTarGz writes a reproducible archive: sorted names, fixed times.
func writeTarGz(dst string, es []entry) error {
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.text)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(e.text)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: %d bytes compressed\n", dst, buf.Len())
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}
