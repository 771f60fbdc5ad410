package finetune

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vitbert/vitbert/train"
)

// Item 13 of issue 12: the evaluations inside fine-tuning and Evaluate show
// their progress (plain lines off a terminal, once an evaluation has taken
// train.PlainInterval), and Quiet hides it.
func TestEvaluationsShowProgress(t *testing.T) {
	defer func(d time.Duration) { train.PlainInterval = d }(train.PlainInterval)
	train.PlainInterval = time.Nanosecond // every batch is "long"
	c := tinyConfig(Task{Name: TaskEmbeddedImages}, 2, 8)
	c.ModelConfig = tinyModel(true, false)
	c.EvalBatch = 250 // 4 batches of the 1,000 validation images, 8 of the 2,000 test images
	for _, quiet := range []bool{false, true} {
		var progress bytes.Buffer
		out := t.TempDir()
		if _, err := Run(context.Background(), backend(t), c, Options{OutDir: out, Progress: &progress, Quiet: quiet}); err != nil {
			t.Fatal(err)
		}
		var evProgress bytes.Buffer
		if _, err := Evaluate(backend(t), out+"/"+BestDir, Task{}, EvalOptions{Log: &evProgress, Quiet: quiet}); err != nil {
			t.Fatal(err)
		}
		got := progress.String() + evProgress.String()
		for _, want := range []string{
			"evaluate validation: 1/4 batches (25%)", "evaluate validation: 4/4 batches (100%)", // during training
			"evaluate test: 8/8 batches (100%)", // the selected model, after training
		} {
			if strings.Contains(progress.String(), want) == quiet {
				t.Errorf("quiet %v: finetune progress %q: %q", quiet, progress.String(), want)
			}
		}
		if want := "evaluate test: 1/8 batches (12%)"; strings.Contains(evProgress.String(), want) == quiet {
			t.Errorf("quiet %v: Evaluate progress %q: %q", quiet, evProgress.String(), want)
		}
		if quiet && strings.Contains(got, "batches") {
			t.Errorf("quiet: progress %q", got)
		}
	}
}
