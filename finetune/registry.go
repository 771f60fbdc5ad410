package finetune

import (
	"fmt"
	"strings"
)

// taskEntry is a registered task: its metadata, the other names it answers
// to, and its reader. A task is added by one file whose init calls
// registerTask (see brown.go); Run, Evaluate, TaskNames and the CLI's help
// find it there.
type taskEntry struct {
	def     taskDef
	aliases []string
	// open reads the task's data at path (empty for built-in data); def is
	// a copy of the entry's def that open may specialise (the splits or
	// metrics of the data found).
	open func(def *taskDef, path string) (*taskData, error)
}

var (
	taskList  []*taskEntry
	taskIndex = map[string]*taskEntry{}
)

func normTaskName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// registerTask adds a task; a name taken twice is a programming error.
func registerTask(e *taskEntry) {
	for _, n := range append([]string{e.def.Name}, e.aliases...) {
		n = normTaskName(n)
		if _, dup := taskIndex[n]; dup {
			panic(fmt.Sprintf("finetune: task name %q registered twice", n))
		}
		taskIndex[n] = e
	}
	taskList = append(taskList, e)
}

// TaskNames lists every task name Run and Evaluate accept, in registration
// order.
func TaskNames() []string {
	names := make([]string, len(taskList))
	for i, e := range taskList {
		names[i] = e.def.Name
	}
	return names
}

// lookupTask resolves a task name (or alias) to a copy of its definition.
func lookupTask(name string) (*taskDef, error) {
	e, err := findTask(name)
	if err != nil {
		return nil, err
	}
	d := e.def
	return &d, nil
}

func findTask(name string) (*taskEntry, error) {
	if e, ok := taskIndex[normTaskName(name)]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("unknown task %q (want one of %s)", name, strings.Join(TaskNames(), ", "))
}
