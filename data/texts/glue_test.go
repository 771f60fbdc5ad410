package texts

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Rows below mimic the GLUE files' real layouts ("|" stands for a tab).
var glueFixtures = map[string]map[string]string{
	"CoLA": {
		"train": "gj04|1||Our friends won't buy this analysis.\ngj04|0|*|They drank the pub.\n",
		"dev":   "gj04|1||The sailors rode the breeze clear of the rocks.\n",
		"test":  "index|sentence\n0|Bill whistled past the house.\n",
	},
	"SST-2": {
		"train": "sentence|label\nhide new secretions |0\ncontains no wit |0\ngreat fun |1\n",
		"dev":   "sentence|label\nit 's a charming journey . |1\n",
		"test":  "index|sentence\n0|uneasy mishmash .\n",
	},
	"MRPC": {
		"train": "\ufeffQuality|#1 ID|#2 ID|#1 String|#2 String\n1|702876|702977|He said so.|So he said.\n0|2108705|2108831|Yucaipa owned it.|It was sold.\n",
		"dev":   "Quality|#1 ID|#2 ID|#1 String|#2 String\n1|1|2|A.|B.\n",
		"test":  "index|#1 ID|#2 ID|#1 String|#2 String\n0|1089874|1089925|A.|B.\n",
	},
	"STS-B": {
		"train": "index|genre|filename|year|old_index|source1|source2|sentence1|sentence2|score\n0|main-captions|MSRvid|2012test|0001|none|none|A plane is taking off.|An air plane is taking off.|5.000\n1|main-captions|MSRvid|2012test|0004|none|none|A man is playing a flute.|A man is playing a flute.|3.800\n",
		"dev":   "index|genre|filename|year|old_index|source1|source2|sentence1|sentence2|score\n0|g|f|y|o|s|s|A.|B.|0\n",
		"test":  "index|genre|filename|year|old_index|source1|source2|sentence1|sentence2\n0|g|f|y|o|s|s|A.|B.\n",
	},
	"QQP": {
		"train": "id|qid1|qid2|question1|question2|is_duplicate\n133273|213221|213222|How is the life?|How is life?|0\n402555|536040|536041|How do I?|How can I?|1\n",
		"dev":   "id|qid1|qid2|question1|question2|is_duplicate\n1|2|3|Why?|Why not?|0\n",
		"test":  "id|question1|question2\n0|Why?|How?\n",
	},
	"MNLI": {
		"train":           "index|promptID|pairID|genre|sentence1_binary_parse|sentence2_binary_parse|sentence1_parse|sentence2_parse|sentence1|sentence2|label1|gold_label\n0|31193|31193n|government|( ( x ) )|( y )|(ROOT x)|(ROOT y)|Conceptually cream skimming has two dimensions.|Product and geography are what make cream skimming work. |neutral|neutral\n",
		"dev_matched":     "index|promptID|pairID|genre|sentence1_binary_parse|sentence2_binary_parse|sentence1_parse|sentence2_parse|sentence1|sentence2|label1|label2|label3|label4|label5|gold_label\n0|63735|63735n|slate|b|b|p|p|The new rights are nice.|Everyone really likes it.|neutral|entailment|neutral|neutral|neutral|neutral\n",
		"dev_mismatched":  "index|promptID|pairID|genre|sentence1_binary_parse|sentence2_binary_parse|sentence1_parse|sentence2_parse|sentence1|sentence2|label1|label2|label3|label4|label5|gold_label\n0|75290|75290c|letters|b|b|p|p|Your contribution helped.|Your contribution was useless.|contradiction|contradiction|contradiction|contradiction|contradiction|contradiction\n",
		"test_matched":    "index|promptID|pairID|genre|sentence1_binary_parse|sentence2_binary_parse|sentence1_parse|sentence2_parse|sentence1|sentence2\n0|31193|31193n|government|b|b|p|p|A.|B.\n",
		"test_mismatched": "index|promptID|pairID|genre|sentence1_binary_parse|sentence2_binary_parse|sentence1_parse|sentence2_parse|sentence1|sentence2\n0|1|1n|letters|b|b|p|p|A.|B.\n",
	},
	"QNLI": {
		"train": "index|question|sentence|label\n0|When did it start?|It started in 1990.|entailment\n1|Who?|Nobody knows.|not_entailment\n",
		"dev":   "index|question|sentence|label\n0|Q?|S.|entailment\n",
		"test":  "index|question|sentence\n0|Q?|S.\n",
	},
	"RTE": {
		"train": "index|sentence1|sentence2|label\n0|No weapons were found.|Weapons were found.|not_entailment\n",
		"dev":   "index|sentence1|sentence2|label\n0|A.|B.|entailment\n",
		"test":  "index|sentence1|sentence2\n0|A.|B.\n",
	},
	"WNLI": {
		"train": "index|sentence1|sentence2|label\n0|I stuck a pin through a carrot.|The carrot had a hole.|1\n",
		"dev":   "index|sentence1|sentence2|label\n0|A.|B.|0\n",
		"test":  "index|sentence1|sentence2\n0|A.|B.\n",
	},
}

func writeGLUE(t *testing.T, root, task, split, body string) string {
	t.Helper()
	dir := filepath.Join(root, task)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, split+".tsv")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(body, "|", "\t")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadGLUEEveryTaskAndSplit(t *testing.T) {
	root := t.TempDir()
	for task, splits := range glueFixtures {
		for split, body := range splits {
			writeGLUE(t, root, task, split, body)
		}
	}
	if len(glueFixtures) != 9 || len(GLUETasks()) != 9 {
		t.Fatalf("%d fixtures, %d tasks; want 9", len(glueFixtures), len(GLUETasks()))
	}
	for _, task := range GLUETasks() {
		for _, split := range task.Splits {
			s, err := ReadGLUE(root, task.Name, split, GLUEOptions{Malformed: MalformedError})
			if err != nil {
				t.Fatalf("%s/%s: %v", task.Name, split, err)
			}
			wantRows := strings.Count(glueFixtures[task.Name][split], "\n")
			if _, headerless := task.headerless[split]; !headerless {
				wantRows-- // header
			}
			if len(s.Examples) != wantRows {
				t.Errorf("%s/%s: %d examples, want %d", task.Name, split, len(s.Examples), wantRows)
			}
			if s.Labelled != !strings.HasPrefix(split, "test") {
				t.Errorf("%s/%s: labelled = %v", task.Name, split, s.Labelled)
			}
			for _, ex := range s.Examples {
				if ex.A == "" || task.Pair != (ex.B != "") {
					t.Errorf("%s/%s line %d: texts %q / %q", task.Name, split, ex.Line, ex.A, ex.B)
				}
			}
		}
	}
}

func TestReadGLUEValuesFromColumns(t *testing.T) {
	root := t.TempDir()
	for task, splits := range glueFixtures {
		writeGLUE(t, root, task, "train", splits["train"])
	}
	tests := []struct {
		task  string
		i     int
		id, a string
		b     string
		label int
		score float32
	}{
		{"CoLA", 1, "gj04", "They drank the pub.", "", 0, 0},
		{"SST-2", 2, "", "great fun ", "", 1, 0},
		{"MRPC", 0, "702876", "He said so.", "So he said.", 1, 0},
		{"STS-B", 1, "1", "A man is playing a flute.", "A man is playing a flute.", -1, 3.8},
		{"QQP", 1, "402555", "How do I?", "How can I?", 1, 0},
		{"MNLI", 0, "0", "Conceptually cream skimming has two dimensions.", "Product and geography are what make cream skimming work. ", 2, 0},
		{"QNLI", 1, "1", "Who?", "Nobody knows.", 1, 0},
		{"RTE", 0, "0", "No weapons were found.", "Weapons were found.", 1, 0},
		{"WNLI", 0, "0", "I stuck a pin through a carrot.", "The carrot had a hole.", 1, 0},
	}
	for _, tc := range tests {
		s, err := ReadGLUE(filepath.Join(root, tc.task), tc.task, "train", GLUEOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ex := s.Examples[tc.i]
		if ex.ID != tc.id || ex.A != tc.a || ex.B != tc.b || ex.Label != tc.label || ex.Score != tc.score {
			t.Errorf("%s row %d = %+v, want id %q a %q b %q label %d score %v", tc.task, tc.i, ex, tc.id, tc.a, tc.b, tc.label, tc.score)
		}
	}
}

func TestReadGLUEMalformedRows(t *testing.T) {
	header := map[string]string{
		"SST-2": "sentence|label\n",
		"QQP":   "id|qid1|qid2|question1|question2|is_duplicate\n",
		"MNLI":  "index|promptID|pairID|genre|sentence1_binary_parse|sentence2_binary_parse|sentence1_parse|sentence2_parse|sentence1|sentence2|label1|gold_label\n",
		"STS-B": "index|genre|filename|year|old_index|source1|source2|sentence1|sentence2|score\n",
		"CoLA":  "",
		"RTE":   "index|sentence1|sentence2|label\n",
	}
	tests := []struct {
		name, task, row, reason string
	}{
		{"missing column", "SST-2", "just text\n", "1 columns, want 2"},
		{"bad label", "SST-2", "text|2\n", `label "2"`},
		{"invalid UTF-8", "SST-2", "caf\xe9|1\n", "UTF-8"},
		{"QQP broken line", "QQP", "5|6|7|What is\n", "4 columns"},
		{"QQP empty question", "QQP", "5|6|7|What?||0\n", "empty second text"},
		{"MNLI bad label", "MNLI", "1|2|2e|g|b|b|p|p|A.|B.|-|-\n", `label "-"`},
		{"STS-B score out of range", "STS-B", "1|g|f|y|o|s|s|A.|B.|5.5\n", "[0, 5]"},
		{"STS-B score not a number", "STS-B", "1|g|f|y|o|s|s|A.|B.|high\n", "not a number"},
		{"CoLA extra column", "CoLA", "src|1||A sentence.|extra\n", "5 columns, want 4"},
		{"RTE label case", "RTE", "0|A.|B.|Entailment\n", `label "Entailment"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			good := glueFixtures[tc.task]["train"]
			body := header[tc.task] + tc.row + good[strings.Index(good, "\n")+1:]
			if tc.task == "CoLA" {
				body = tc.row + good
			}
			p := writeGLUE(t, root, tc.task, "train", body)
			badLine := 2
			if tc.task == "CoLA" {
				badLine = 1
			}
			// Error mode names file and line.
			_, err := ReadGLUE(root, tc.task, "train", GLUEOptions{Malformed: MalformedError})
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line "+strconv.Itoa(badLine)+":") || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error mode: %v; want %s line %d and %q", err, p, badLine, tc.reason)
			}
			// Task default: errors except for QQP and MNLI, which skip and count.
			s, err := ReadGLUE(root, tc.task, "train", GLUEOptions{})
			task, _ := LookupTask(tc.task)
			if task.KnownMalformed {
				if err != nil || len(s.Skipped) != 1 || s.Skipped[0].Line != badLine {
					t.Fatalf("default mode on %s: err %v, skipped %+v", tc.task, err, s)
				}
			} else if err == nil {
				t.Fatalf("default mode on %s accepted a malformed row", tc.task)
			}
			// Skip mode keeps the good rows.
			s, err = ReadGLUE(root, tc.task, "train", GLUEOptions{Malformed: MalformedSkip})
			if err != nil || len(s.Skipped) != 1 || !strings.Contains(s.Skipped[0].Reason, tc.reason) {
				t.Fatalf("skip mode: err %v, skipped %+v", err, s)
			}
			if want := strings.Count(glueFixtures[tc.task]["train"], "\n"); tc.task != "CoLA" && len(s.Examples) != want-1 || tc.task == "CoLA" && len(s.Examples) != want {
				t.Errorf("skip mode kept %d examples", len(s.Examples))
			}
		})
	}
}

func TestReadGLUEBadArguments(t *testing.T) {
	root := t.TempDir()
	writeGLUE(t, root, "RTE", "train", "index|premise|hypothesis|label\n0|A|B|entailment\n")
	if _, err := ReadGLUE(root, "RTE", "train", GLUEOptions{}); err == nil || !strings.Contains(err.Error(), `lacks column "sentence1"`) {
		t.Errorf("wrong header: %v", err)
	}
	if _, err := ReadGLUE(root, "RTE", "dev_matched", GLUEOptions{}); err == nil {
		t.Error("unknown split accepted")
	}
	if _, err := ReadGLUE(root, "SQuAD", "train", GLUEOptions{}); err == nil {
		t.Error("unknown task accepted")
	}
	for _, n := range []string{"sst2", "STS-B", "stsb", "mnli", "Co_LA"} {
		if _, err := LookupTask(n); err != nil {
			t.Errorf("LookupTask(%q): %v", n, err)
		}
	}
}
