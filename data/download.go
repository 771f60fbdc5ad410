// Package data holds what the data set packages share: downloading a file
// over HTTPS with a pinned SHA-256.
package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Client is the HTTP client data sets are fetched with: an unreachable host
// fails within a minute rather than hanging, and a slow but live transfer
// is never cut.
var Client = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
}}

// Download fetches url into dst and checks that its SHA-256 is wantSHA256
// (lower-case hex). The bytes go to dst+".part" first; a .part left by an
// interrupted download is resumed with an HTTP Range request (a server that
// ignores the range restarts it). dst appears, by rename, only once the
// checksum matches; a mismatch removes the .part, so nothing half-written or
// wrong stays behind. An existing dst with the right checksum is kept as is.
// progress receives a progress bar (nil: none).
func Download(ctx context.Context, client *http.Client, url, dst, wantSHA256 string, progress io.Writer) error {
	if client == nil {
		client = Client
	}
	if progress == nil {
		progress = io.Discard
	}
	if sum, err := FileSHA256(dst); err == nil && sum == wantSHA256 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	part := dst + ".part"
	h := sha256.New()
	var have int64
	if f, err := os.Open(part); err == nil {
		have, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", part, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", url, err)
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		flags |= os.O_APPEND
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC // no resume: start over
		have = 0
		h.Reset()
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// The .part is already as long as the file (or longer): check it.
		return finish(part, dst, "downloading "+url, h, wantSHA256)
	default:
		return fmt.Errorf("downloading %s: %s", url, resp.Status)
	}
	out, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return err
	}
	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	}
	bar := progressBar(progress, total, dst)
	bar.Set64(have)
	_, copyErr := io.Copy(io.MultiWriter(out, h, bar), resp.Body)
	if err := out.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	if copyErr != nil {
		// Keep the .part: the next call resumes it.
		return fmt.Errorf("downloading %s: %w (the partial file %s is resumed by the next fetch)", url, copyErr, part)
	}
	return finish(part, dst, "downloading "+url, h, wantSHA256)
}

// finish renames part to dst if its hash is the wanted one, else removes it;
// what names the transfer in the error ("downloading URL").
func finish(part, dst, what string, h interface{ Sum([]byte) []byte }, want string) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(part)
		return fmt.Errorf("%s: SHA-256 %s, want %s: the file at the source changed or the download is damaged (nothing was kept)", what, got, want)
	}
	return os.Rename(part, dst)
}

// progressBar is the byte progress bar, on w, of a transfer of total bytes
// (-1: unknown) to dst.
func progressBar(w io.Writer, total int64, dst string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(filepath.Base(dst)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
}

// CopyChecked copies a local file src to dst as Download does a remote one:
// through dst+".part" and a progress bar (nil: none), hashing on the way; dst
// appears, by rename, only if the SHA-256 is wantSHA256.
func CopyChecked(src, dst, wantSHA256 string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	part := dst + ".part"
	out, err := os.Create(part)
	if err != nil {
		return err
	}
	defer os.Remove(part) // no-op after the rename
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h, progressBar(progress, st.Size(), dst)), in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return finish(part, dst, "copying "+src, h, wantSHA256)
}

// FileSHA256 is the lower-case hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Route is one way to obtain a data set: its name for messages, and the
// function that fetches it.
type Route struct {
	Name  string
	Fetch func() error
}

// FirstOf runs the routes in order until one succeeds, telling progress when
// one fails and the next is tried. The error, when all fail, names each.
func FirstOf(what string, progress io.Writer, routes ...Route) error {
	if progress == nil {
		progress = io.Discard
	}
	var errs []error
	for i, r := range routes {
		err := r.Fetch()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
		if i+1 < len(routes) {
			fmt.Fprintf(progress, "%s: %s failed (%v); trying %s\n", what, r.Name, err, routes[i+1].Name)
		}
	}
	return fmt.Errorf("fetching %s: every route failed: %w", what, errors.Join(errs...))
}
