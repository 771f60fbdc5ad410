package main

import (
	"flag"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/vitbert/vitbert/train"
)

// flags is a command's flag set. Every command reads its flags through it,
// so the question "did the user type this flag?" has one answer (Given,
// from flag.FlagSet.Visit): a typed value is used as it is, zero included,
// never mistaken for "not set". A numeric flag is declared with its valid
// range (IntIn, FloatIn, train.Range): Parse refuses a typed value outside
// it, naming the flag. Flags bound to configuration fields (bind) are
// applied onto a configuration only when typed, and that configuration's
// own Validate (the one used for config files too) checks them; fieldError
// turns its *train.FieldError back into the flag's name.
type flags struct {
	*flag.FlagSet
	ranges   map[string]train.Range
	bindings []binding
}

// binding ties a flag to a configuration field by its JSON path.
type binding struct {
	flag, field string
	// also, if set, runs after the value is applied (e.g. --warmup clears
	// warmup_frac so that --warmup 0 means no warm-up).
	also func(cfg reflect.Value)
}

// newFlags returns a flag set that reports errors instead of exiting, so
// every command fails the same way.
func newFlags(name, usageLine string) *flags {
	fs := flag.NewFlagSet("vitbert "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: vitbert %s %s\n\nFlags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return &flags{FlagSet: fs, ranges: map[string]train.Range{}}
}

// IntIn declares an int flag whose typed values must lie in r.
func (f *flags) IntIn(name string, def int, r train.Range, usage string) *int {
	f.ranges[name] = r
	return f.Int(name, def, usage+" ("+r.String()+")")
}

// FloatIn declares a float64 flag whose typed values must lie in r.
func (f *flags) FloatIn(name string, def float64, r train.Range, usage string) *float64 {
	f.ranges[name] = r
	return f.Float64(name, def, usage+" ("+r.String()+")")
}

// Parse parses args and refuses a typed numeric value outside its range.
func (f *flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	var err error
	f.Visit(func(fl *flag.Flag) {
		r, ok := f.ranges[fl.Name]
		if !ok || err != nil {
			return
		}
		if v := numeric(fl); !r.Contains(v) {
			err = fmt.Errorf("--%s %s: must be %s", fl.Name, fl.Value, r)
		}
	})
	return err
}

// ParseNoArgs is Parse for a command that takes flags only: a positional
// argument is an error.
func (f *flags) ParseNoArgs(args []string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	return nil
}

// numeric is the value of an int, int64 or float64 flag.
func numeric(fl *flag.Flag) float64 {
	switch v := fl.Value.(flag.Getter).Get().(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}

// Given reports whether the flag was typed on the command line.
func (f *flags) Given(name string) bool {
	given := false
	f.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// bind declares a flag for the configuration field at the JSON path field
// of def (a pointer to a struct), with def's value as the default shown by
// --help. The flag's type follows the field's kind.
func (f *flags) bind(name, field string, def any, usage string, also func(cfg reflect.Value)) {
	v := fieldByPath(reflect.ValueOf(def).Elem(), field)
	switch v.Kind() {
	case reflect.Int:
		f.Int(name, int(v.Int()), usage)
	case reflect.Int64:
		f.Int64(name, v.Int(), usage)
	case reflect.Float64:
		f.Float64(name, v.Float(), usage)
	case reflect.String:
		f.String(name, v.String(), usage)
	case reflect.Bool:
		f.Bool(name, v.Bool(), usage)
	default:
		panic(fmt.Sprintf("vitbert: flag --%s: field %s has kind %s", name, field, v.Kind()))
	}
	f.bindings = append(f.bindings, binding{flag: name, field: field, also: also})
}

// apply sets, on cfg (a pointer to the struct bind was given), the fields
// of the bound flags that were typed, and only those.
func (f *flags) apply(cfg any) {
	root := reflect.ValueOf(cfg).Elem()
	for _, b := range f.bindings {
		if !f.Given(b.flag) {
			continue
		}
		v := fieldByPath(root, b.field)
		v.Set(reflect.ValueOf(f.Lookup(b.flag).Value.(flag.Getter).Get()).Convert(v.Type()))
		if b.also != nil {
			b.also(root)
		}
	}
}

// boundFlag returns the bound flag of a configuration field, "" if none.
func (f *flags) boundFlag(field string) string {
	for _, b := range f.bindings {
		if b.field == field {
			return b.flag
		}
	}
	return ""
}

// fieldError names the typed flag behind a *train.FieldError; other errors
// (and errors of fields no typed flag set) are returned as they are.
func (f *flags) fieldError(err error) error {
	fe, ok := err.(*train.FieldError)
	if !ok {
		return err
	}
	if name := f.boundFlag(fe.Field); name != "" && f.Given(name) {
		return fmt.Errorf("--%s %s: %w", name, f.Lookup(name).Value, err)
	}
	return err
}

// fieldByPath finds the struct field at a dotted JSON path ("optimizer.clip_norm").
func fieldByPath(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		t := v.Type()
		found := false
		for i := range t.NumField() {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			panic(fmt.Sprintf("vitbert: no field %q in %s (path %s)", name, t, path))
		}
	}
	return v
}
