package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vitbert/vitbert/report"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("reproduce", "run the paper's comparison (teachers, joint variants, fine-tuning, ablations) and write report.md", runReproduce)
	register("demo", "the main job: a cut-down reproduction on the built-in data, printing the table", runDemo)
}

func runReproduce(args []string) error {
	fs := newFlags("reproduce", "--preset demo|tiny|small --out DIR [--data DIR] [--seeds 1,2,3] [--no-ablations] [--stage all|pretrain]")
	preset := fs.String("preset", "demo", "demo (built-in data, minutes), tiny (real data from 'vitbert data fetch all', about 75 minutes on 2 cores) or small (the same data, a larger model; pre-training meant for a GPU)")
	out := fs.String("out", "", "output folder: pretrain/, finetune/, figures/, report.md (required); rerun to continue an interrupted reproduction")
	dataDir := fs.String("data", "data/cache", "folder of the fetched data sets (tiny preset)")
	seeds := fs.String("seeds", "", "comma-separated fine-tuning seeds (default: the preset's)")
	noAbl := fs.Bool("no-ablations", false, "skip the distillation and mask-ratio ablations")
	steps := fs.IntIn("pretrain-steps", 0, train.AtLeast(1), "pre-training steps per variant (default: the preset's)")
	ftSteps := fs.IntIn("finetune-steps", 0, train.AtLeast(1), "fine-tuning steps per cell (default: the preset's)")
	quiet := fs.Bool("quiet", false, "no progress bars")
	stage := fs.String("stage", "all", "all, or pretrain: stop after the pre-training runs (on a GPU machine; rerun with all to score them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *stage != "all" && *stage != "pretrain" {
		return fmt.Errorf("--stage %q: want all or pretrain", *stage)
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	plan, err := report.PlanPreset(*preset, *dataDir)
	if err != nil {
		return err
	}
	if *preset != "demo" {
		for _, name := range []string{"fashion-mnist", "mnist", "sotu", "moby-dick", "spamassassin", "brown-genres"} {
			if _, err := os.Stat(filepath.Join(*dataDir, name)); err != nil {
				return fmt.Errorf("the %s preset needs the real data sets in %s (missing %s): run 'vitbert data fetch all --dir %s' first", *preset, *dataDir, name, *dataDir)
			}
		}
	}
	if *seeds != "" {
		plan.Seeds = nil
		for _, s := range strings.Split(*seeds, ",") {
			var v int
			if _, err := fmt.Sscan(strings.TrimSpace(s), &v); err != nil {
				return fmt.Errorf("--seeds: %q is not a number", s)
			}
			plan.Seeds = append(plan.Seeds, v)
		}
	}
	if *noAbl {
		plan.Ablations = false
	}
	if fs.Given("pretrain-steps") {
		plan.Pretrain.Steps = *steps
	}
	if fs.Given("finetune-steps") {
		plan.FinetuneSteps = *ftSteps
	}
	return reproduce(plan, *out, *quiet, *stage == "pretrain", "vitbert "+strings.Join(append([]string{"reproduce"}, args...), " "))
}

// reproduce runs plan into out; pretrainOnly stops after the pre-training
// runs (reproduce --stage pretrain).
func reproduce(plan report.Plan, out string, quiet, pretrainOnly bool, command string) error {
	if err := startHook(); err != nil {
		return err
	}
	release, err := train.LockDir(out)
	if err != nil {
		return err
	}
	defer release()
	backend, err := newBackend()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report.Command = command
	var progress io.Writer = os.Stderr
	if quiet {
		progress = nil
	}
	r := &report.Runner{Plan: plan, Out: out, Backend: backend, Log: os.Stderr, Quiet: quiet, PretrainOnly: pretrainOnly}
	r.Finetune = report.Finetuner(backend, &plan, progress)
	cells, err := r.Run(ctx)
	if err != nil || pretrainOnly {
		return err
	}
	for _, p := range plan.ProtocolList() {
		fmt.Printf("\n%s (test split, ×100):\n\n%s", p.Label(), r.Table(report.CellsOf(cells, p.Name), report.MainVariants(), p.Tasks(plan.Tasks)))
	}
	fmt.Printf("\nReport, with the held-out pre-training metrics and the verdicts on the paper's claims: %s/report.md\n", out)
	return nil
}

func runDemo(args []string) error {
	fs := newFlags("demo", "[--out DIR]")
	out := fs.String("out", "runs/demo", "output folder (rerun continues where it stopped)")
	quiet := fs.Bool("quiet", false, "no progress bars")
	if err := fs.Parse(args); err != nil {
		return err
	}
	plan, err := report.PlanPreset("demo", "")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "vitbert demo: pre-training a text teacher, an image teacher and four joint variants (%d steps each) on the built-in data, then scoring each on Fashion-MNIST and SpamAssassin with a linear probe and with full fine-tuning; results in %s\n", plan.Pretrain.Steps, *out)
	return reproduce(plan, *out, *quiet, false, "vitbert demo")
}
