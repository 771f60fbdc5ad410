package serve

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium or Chrome binary. Without one the page test
// skips on a developer machine but fails in CI (CI=true), where .ci/run
// installs Debian's chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium binary in PATH, and CI is set: the page test must run in CI (.ci/run installs Debian's chromium)")
	}
	t.Skip("no chromium binary in PATH (apt-get install chromium); CI runs this test")
	return ""
}

// TestPageInChromium loads the page in a headless Chromium, types a
// sentence, waits for the fill-mask bars and checks that they are the API's
// answer; it also classifies an image and compares embeddings, then keeps a
// screenshot (in $VITBERT_SCREENSHOT when set).
func TestPageInChromium(t *testing.T) {
	bin := chromium(t)
	opts := DefaultOptions()
	opts.MaxBatch, opts.Lengths = 2, []int{16}
	ts, _ := newServer(t, opts, Limits{MaxBody: 8 << 20}, true)

	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 720))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	dir := t.TempDir()
	img := filepath.Join(dir, "gradient.png")
	if err := os.WriteFile(img, pngBytes(t, 40, 30), 0o644); err != nil {
		t.Fatal(err)
	}
	sentence := "the cat sat on the [MASK]."
	var bars []struct {
		Label string `json:"label"`
		Score string `json:"score"`
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(`#model option[value="mlm"]`)),
		chromedp.Clear(chromedp.ID("fm-input")),
		chromedp.SendKeys(chromedp.ID("fm-input"), sentence),
		chromedp.Click(chromedp.ID("fm-run")),
		chromedp.WaitVisible(chromedp.CSS(`#fm-results[data-done="1"] .bar`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	barsJSON, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify([...document.querySelectorAll("#fm-results .bar")].map(b => ({label: b.dataset.label, score: b.dataset.score})))`))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(barsJSON), &bars); err != nil {
		t.Fatal(err)
	}
	status, body := send(t, "POST", ts.URL+"/v1/fill-mask", "application/json", []byte(`{"inputs":"`+sentence+`","top_k":5}`))
	var want []Fill
	if status != 200 || json.Unmarshal([]byte(body), &want) != nil {
		t.Fatalf("API: %d %s", status, body)
	}
	if len(bars) != len(want) || len(want) != 5 {
		t.Fatalf("page shows %d bars, the API answers %d candidates", len(bars), len(want))
	}
	for i, b := range bars {
		s, err := strconv.ParseFloat(b.Score, 64)
		if err != nil || b.Label != want[i].TokenStr || math.Abs(s-want[i].Score) > 1e-12*want[i].Score {
			t.Errorf("bar %d: %s %s, API %s %g", i, b.Label, b.Score, want[i].TokenStr, want[i].Score)
		}
	}

	// The image and embedding panels, for the screenshot and as a smoke test.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("model"), "vit"),
		chromedp.SetUploadFiles(chromedp.ID("img-file"), []string{img}),
		chromedp.WaitVisible(chromedp.CSS(`#img-results .bar`)),
		chromedp.SetValue(chromedp.ID("model"), "mlm"),
		chromedp.Click(chromedp.ID("emb-run")),
		chromedp.WaitVisible(chromedp.CSS(`#emb-results td`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	imgBars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#img-results .bar").length`))
	if err != nil {
		t.Fatal(err)
	}
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#emb-results td").length`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if imgBars != 5 || cells != 9 {
		t.Errorf("image panel shows %d bars (want 5), similarity table %d cells (want 9)", imgBars, cells)
	}
	out := os.Getenv("VITBERT_SCREENSHOT")
	if out == "" {
		out = filepath.Join(dir, "page.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
}
