// ghz-html: renders ghz JSON reports (`ghz -O json`) as ghz's own HTML report,
// so that one ghz run gives both files. Usage: ghz-html REPORT.json OUT.html
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/bojand/ghz/printer"
	"github.com/bojand/ghz/runner"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ghz-html REPORT.json OUT.html")
		os.Exit(2)
	}
	if err := render(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "ghz-html:", err)
		os.Exit(1)
	}
}

func render(in, out string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var report runner.Report
	if err := json.Unmarshal(data, &report); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	p := printer.ReportPrinter{Report: &report, Out: f}
	if err := p.Print("html"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
