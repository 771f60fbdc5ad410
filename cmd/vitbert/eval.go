package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vitbert/vitbert/finetune"
)

func init() {
	register("eval", "score a fine-tuned model (vitbert finetune's OUT/best) on a split of its task", runEval)
}

func runEval(args []string) error {
	fs := newFlags("eval", "--model OUT/best [--task NAME] [--data PATH] [--split test] [--json] [--quiet]")
	modelDir := fs.String("model", "", "fine-tuned model directory: vitbert finetune's OUT/best (required)")
	task := fs.String("task", "", "task (default: the one the model was fine-tuned on): "+strings.Join(finetune.TaskNames(), ", "))
	data := fs.String("data", "", "the task's data (default: the path it was fine-tuned with)")
	split := fs.String("split", "", "split to score (default: the task's test split(s), as at the end of fine-tuning; \"validation\": the split carved from train that selected the model)")
	adapt := fs.Bool("adapt-images", false, "resize and convert images whose size or channels differ from the model's (otherwise an error)")
	asJSON := fs.Bool("json", false, "print the metrics as one JSON object")
	quiet := fs.Bool("quiet", false, "no progress")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	if *modelDir == "" {
		return fmt.Errorf("--model is required")
	}
	backend, err := newBackend()
	if err != nil {
		return err
	}
	m, err := finetune.Evaluate(backend, *modelDir, finetune.Task{Name: *task, Data: *data},
		finetune.EvalOptions{Split: *split, AdaptImages: *adapt, Quiet: *quiet})
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	for _, k := range m.SortedKeys() {
		fmt.Printf("%-24s %.4f\n", k, m[k])
	}
	return nil
}
