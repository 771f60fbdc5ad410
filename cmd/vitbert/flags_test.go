package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/pretrain"
)

var errStarted = errors.New("started")

// numericFlags lists the int and float flags a command's --help shows.
func numericFlags(t *testing.T, run func([]string) error, args ...string) map[string]string {
	t.Helper()
	help := redirect(t, &os.Stderr, func() { _, _ = capture(t, run, append(args, "--help")...) })
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+) (int|float)`).FindAllStringSubmatch(help, -1) {
		out[m[1]] = m[2]
	}
	if len(out) == 0 {
		t.Fatalf("no numeric flags found in the help of %v:\n%s", args, help)
	}
	return out
}

// sweep runs a command with negative, zero and huge values (NaN and ±Inf
// for floats) of each numeric flag: it must not panic, and must either
// accept the value (reach the start of its work, or finish) or refuse it
// with an error naming the flag. It returns the values accepted.
func sweep(t *testing.T, name string, run func([]string) error, base []string, flags map[string]string) map[string][]string {
	t.Helper()
	old := startHook
	startHook = func() error { return errStarted }
	defer func() { startHook = old }()
	accepted := map[string][]string{}
	for fl, kind := range flags {
		values := []string{"-3", "0", "1000000000000000"}
		if kind == "float" {
			values = append(values, "1e300", "NaN", "-Inf", "0.5")
		}
		for _, v := range values {
			args := append(append([]string{}, base...), "--"+fl, v)
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
						t.Errorf("%s %v panicked: %v", name, args, p)
					}
				}()
				_, err = capture(t, run, args...)
				return err
			}()
			switch {
			case err == nil || errors.Is(err, errStarted):
				accepted[fl] = append(accepted[fl], v)
			case !strings.Contains(err.Error(), "--"+fl):
				t.Errorf("%s %v: the error does not name --%s: %v", name, args, fl, err)
			}
		}
	}
	return accepted
}

func TestFlagSweepEveryCommand(t *testing.T) {
	model := tinyModelDir(t)
	png := filepath.Join(t.TempDir(), "x.png")
	writeGreyPNG(t, png, 28)
	out := t.TempDir()
	cases := []struct {
		name string
		run  func([]string) error
		base []string
		// wantAccepted are (flag, value) pairs that must be honoured.
		want [][2]string
	}{
		{"pretrain", runPretrain, []string{"--out", filepath.Join(out, "pt")}, [][2]string{{"clip", "0"}, {"weight-decay", "0"}, {"dropout", "0"}, {"warmup", "0"}}},
		{"finetune", runFinetune, []string{"--model", model, "--out", filepath.Join(out, "ft")}, [][2]string{{"weight-decay", "0"}, {"dropout", "0"}, {"warmup-frac", "0"}}},
		{"predict", runPredict, []string{"--model", model, "--image", png}, [][2]string{{"top-k", "1000000000000000"}}},
		{"bench", runBench, []string{"--in-process"}, [][2]string{{"warmup", "0"}}},
		{"reproduce", runReproduce, []string{"--out", filepath.Join(out, "rep")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flags := numericFlags(t, tc.run)
			acc := sweep(t, tc.name, tc.run, tc.base, flags)
			for _, w := range tc.want {
				found := false
				for _, v := range acc[w[0]] {
					found = found || v == w[1]
				}
				if !found {
					t.Errorf("%s --%s %s was refused", tc.name, w[0], w[1])
				}
			}
		})
	}
}

// TestConfigPrintHonoursTypedValues: every value of a pretrain flag that
// config print accepts is the value of its field in the printed
// configuration (zero included); a refused one names the flag.
func TestConfigPrintHonoursTypedValues(t *testing.T) {
	flags := numericFlags(t, runConfig, "print")
	fs := newFlags("x", "")
	pretrainFlags(fs)
	fields := map[string]string{}
	for _, b := range fs.bindings {
		fields[b.flag] = b.field
	}
	for fl, kind := range flags {
		field := fields[fl]
		if field == "" {
			t.Errorf("--%s is not bound to a configuration field", fl)
			continue
		}
		values := []string{"-3", "0", "1", "1000000000000000"}
		if kind == "float" {
			values = append(values, "0.25", "NaN", "1e300")
		}
		for _, v := range values {
			stdout, err := capture(t, runConfig, "print", "--"+fl, v)
			if err != nil {
				if !strings.Contains(err.Error(), "--"+fl) {
					t.Errorf("config print --%s %s: the error does not name the flag: %v", fl, v, err)
				}
				continue
			}
			var c pretrain.Config
			if err := json.Unmarshal([]byte(stdout), &c); err != nil {
				t.Fatalf("config print --%s %s: %v", fl, v, err)
			}
			got := fieldByPath(reflect.ValueOf(&c).Elem(), field)
			want, _ := strconv.ParseFloat(v, 64)
			var g float64
			if got.CanInt() {
				g = float64(got.Int())
			} else {
				g = got.Float()
			}
			if g != want {
				t.Errorf("config print --%s %s: %s = %v, not the typed value", fl, v, field, g)
			}
		}
	}
}

func writeGreyPNG(t *testing.T, path string, size int) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	savePNG(t, path, img)
}

// savePNG writes img to path as a PNG file.
func savePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigFileAndFlagsShareValidation: a value is refused the same way
// from a config file and from a flag, the flag's error naming the flag and
// the file's naming the file.
func TestConfigFileAndFlagsShareValidation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"optimizer": {"clip_norm": -2}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const msg = "optimizer.clip_norm must be >= 0 (0 disables clipping), got -2"
	_, err := capture(t, runConfig, "print", "--config", file)
	if err == nil || err.Error() != file+": "+msg {
		t.Errorf("config file: %v", err)
	}
	_, err = capture(t, runConfig, "print", "--clip", "-2")
	if err == nil || err.Error() != "--clip -2: "+msg {
		t.Errorf("flag: %v", err)
	}
	// A flag overrides the file's bad value.
	if _, err := capture(t, runConfig, "print", "--config", file, "--clip", "0"); err != nil {
		t.Errorf("--clip 0 over the file's -2: %v", err)
	}
}

// Item 15: config --help explains itself and is not an error.
func TestConfigHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		if err := runConfig(args); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("config %v: %v, want flag.ErrHelp (exit 0)", args, err)
		}
	}
	if err := runConfig([]string{"nope"}); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Errorf("config nope: %v, want a usage error", err)
	}
}
