package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func payload() ([]byte, string) {
	b := make([]byte, 200_000)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:])
}

// server serves body with Range support (http.ServeContent) and records the
// Range header and the number of body bytes of each request. With cutAt > 0
// the first request sends only cutAt bytes, then drops the connection.
type server struct {
	body   []byte
	cutAt  int
	mu     sync.Mutex
	ranges []string
	sent   []int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	first := len(s.ranges) == 0
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	if first && s.cutAt > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.body)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.body[:s.cutAt])
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		s.record(s.cutAt)
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "f.bin", time.Time{}, bytes.NewReader(s.body))
	s.record(cw.n)
}

func (s *server) record(n int) { s.mu.Lock(); s.sent = append(s.sent, n); s.mu.Unlock() }

type countingWriter struct {
	http.ResponseWriter
	n int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.n += len(b)
	return c.ResponseWriter.Write(b)
}

func noLeftovers(t *testing.T, dir string, keep ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		ok := false
		for _, k := range keep {
			ok = ok || e.Name() == k
		}
		if !ok {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestDownloadGoodFile(t *testing.T) {
	body, sum := payload()
	srv := httptest.NewServer(&server{body: body})
	defer srv.Close()
	dir := t.TempDir()
	dst := filepath.Join(dir, "f.bin")
	var progress bytes.Buffer
	if err := Download(context.Background(), srv.Client(), srv.URL+"/f.bin", dst, sum, &progress); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, body) {
		t.Fatal("downloaded bytes differ")
	}
	if !strings.Contains(progress.String(), "f.bin") {
		t.Errorf("no progress bar: %q", progress.String())
	}
	noLeftovers(t, dir, "f.bin")
}

func TestDownloadCorruptFile(t *testing.T) {
	body, sum := payload()
	bad := append([]byte(nil), body...)
	bad[1234] ^= 1
	srv := httptest.NewServer(&server{body: bad})
	defer srv.Close()
	dir := t.TempDir()
	dst := filepath.Join(dir, "f.bin")
	err := Download(context.Background(), srv.Client(), srv.URL+"/f.bin", dst, sum, nil)
	if err == nil || !strings.Contains(err.Error(), "SHA-256") || !strings.Contains(err.Error(), sum) {
		t.Fatalf("want a checksum error naming the expected sum, got %v", err)
	}
	noLeftovers(t, dir) // neither f.bin nor f.bin.part
}

func TestDownloadResumesInterrupted(t *testing.T) {
	body, sum := payload()
	s := &server{body: body, cutAt: 70_000}
	srv := httptest.NewServer(s)
	defer srv.Close()
	dir := t.TempDir()
	dst := filepath.Join(dir, "f.bin")
	err := Download(context.Background(), srv.Client(), srv.URL+"/f.bin", dst, sum, nil)
	if err == nil {
		t.Fatal("the cut connection was not reported")
	}
	if st, err := os.Stat(dst + ".part"); err != nil || st.Size() != 70_000 {
		t.Fatalf("after the cut: .part %v %v, want 70000 bytes kept", st, err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Fatal("the incomplete file appeared under its final name")
	}
	if err := Download(context.Background(), srv.Client(), srv.URL+"/f.bin", dst, sum, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, body) {
		t.Fatal("resumed file differs")
	}
	// The handler records what it sent after its last write, which the
	// client can read before the handler returns: Close waits for handlers.
	srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ranges) != 2 || len(s.sent) != 2 {
		t.Fatalf("%d requests recorded (%d byte counts), want 2", len(s.ranges), len(s.sent))
	}
	if s.ranges[1] != "bytes=70000-" || s.sent[1] != len(body)-70_000 {
		t.Errorf("second request: Range %q, %d bytes sent; want bytes=70000- and %d", s.ranges[1], s.sent[1], len(body)-70_000)
	}
	noLeftovers(t, dir, "f.bin")
}

// A server that ignores Range (200 with the whole file) restarts the file.
func TestDownloadRestartsWithoutRangeSupport(t *testing.T) {
	body, sum := payload()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	dir := t.TempDir()
	dst := filepath.Join(dir, "f.bin")
	os.WriteFile(dst+".part", body[:5000], 0o644)
	if err := Download(context.Background(), srv.Client(), srv.URL, dst, sum, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Fatal("restarted file differs")
	}
}

func TestFirstOfFallsBack(t *testing.T) {
	var progress bytes.Buffer
	calls := 0
	err := FirstOf("demo", &progress,
		Route{"original home", func() error { calls++; return errors.New("unreachable") }},
		Route{"registry", func() error { calls++; return nil }})
	if err != nil || calls != 2 || !strings.Contains(progress.String(), "original home failed (unreachable); trying registry") {
		t.Fatalf("err %v, calls %d, progress %q", err, calls, progress.String())
	}
	err = FirstOf("demo", nil,
		Route{"a", func() error { return errors.New("e1") }},
		Route{"b", func() error { return errors.New("e2") }})
	if err == nil || !strings.Contains(err.Error(), "a: e1") || !strings.Contains(err.Error(), "b: e2") {
		t.Fatalf("want both failures named, got %v", err)
	}
}

func TestCopyCheckedRefusesWrongBytes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("payload"))
	var progress bytes.Buffer
	if err := CopyChecked(src, filepath.Join(dir, "good"), hex.EncodeToString(sum[:]), &progress); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "good")); string(b) != "payload" {
		t.Errorf("copied %q", b)
	}
	if !strings.Contains(progress.String(), "100%") {
		t.Errorf("progress output %q has no 100%%", progress.String())
	}
	err := CopyChecked(src, filepath.Join(dir, "bad"), strings.Repeat("0", 64), nil)
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("wrong sum: error %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Error("a file with the wrong sum was left in place")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.part")); !os.IsNotExist(err) {
		t.Error("the partial file was left in place")
	}
}
