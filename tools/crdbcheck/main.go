// Command crdbcheck checks that SQL files parse as CockroachDB SQL, using
// CockroachDB's own parser, and that they avoid a few constructs that parse
// there but break FoodFast's rule that our SQL runs unchanged (and behaves
// the same) on PostgreSQL and CockroachDB.
//
// Usage (from the repo root):
//
//	go run ./tools/crdbcheck FILE_OR_DIR...
//
// A directory stands for its *.sql files (sorted, not recursive). Problems are
// printed as FILE:LINE: MESSAGE, where LINE is where the statement starts.
// Exit status: 0 all good, 1 some statement rejected, 2 usage error.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/parser"
	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/parser/statements"
	// Registers the PL/pgSQL parser for DO blocks, as a CockroachDB server
	// does; without it the SQL parser panics on DO $$ ... $$.
	_ "github.com/cockroachdb/cockroachdb-parser/pkg/sql/plpgsql/parser"
	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/sem/tree"
	"github.com/cockroachdb/errors"
)

// problem is one rejected statement.
type problem struct {
	line   int    // 1-based line where the statement starts
	msg    string // parser error or policy violation
	detail string // the statement (with the parser's caret, for syntax errors)
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: crdbcheck FILE_OR_DIR...")
		return 2
	}
	files, err := sqlFiles(args)
	if err != nil {
		fmt.Fprintln(stderr, "crdbcheck:", err)
		return 2
	}
	nStmts, nProbs := 0, 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, "crdbcheck:", err)
			return 2
		}
		n, probs := check(string(src))
		nStmts += n
		nProbs += len(probs)
		for _, p := range probs {
			fmt.Fprintf(stderr, "%s:%d: %s\n", f, p.line, p.msg)
			fmt.Fprintf(stderr, "    %s\n", strings.ReplaceAll(p.detail, "\n", "\n    "))
		}
	}
	if nProbs > 0 {
		fmt.Fprintf(stderr, "crdbcheck: %d rejected statement(s) in %d file(s)\n", nProbs, len(files))
		return 1
	}
	fmt.Fprintf(stdout, "crdbcheck: %d statements in %d files parse as CockroachDB SQL\n", nStmts, len(files))
	return 0
}

// sqlFiles expands each argument: a file stands for itself, a directory for
// its *.sql files in name order (os.ReadDir sorts), not recursing.
func sqlFiles(args []string) ([]string, error) {
	var files []string
	for _, arg := range args {
		fi, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, arg)
			continue
		}
		entries, err := os.ReadDir(arg)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
				files = append(files, filepath.Join(arg, e.Name()))
			}
		}
	}
	return files, nil
}

// check parses src (the text of one file, possibly many statements) and
// returns how many statements it holds and the problems found.
func check(src string) (int, []problem) {
	if stmts, err := parser.Parse(src); err == nil {
		return len(stmts), vet(src, 0, stmts)
	}
	// parser.Parse stops at the first error and does not say which statement
	// failed, so split with CockroachDB's own scanner (it knows quotes,
	// comments and $$ strings) and parse statement by statement, reporting
	// every bad one. (The splitter does not know CREATE FUNCTION ... BEGIN
	// ATOMIC ... END bodies; we reject functions anyway.)
	n, probs := 0, []problem(nil)
	for off := 0; off < len(src); {
		size, ok := parser.SplitFirstStatement(src[off:])
		if !ok {
			size = len(src) - off
		}
		chunk := src[off : off+size]
		if stmts, err := parser.Parse(chunk); err != nil {
			start := off + skipSpaceAndComments(chunk)
			detail := strings.Join(errors.GetAllDetails(err), "\n")
			if detail == "" {
				detail = strings.TrimSpace(src[start : off+size])
			}
			probs = append(probs, problem{lineOf(src, start), err.Error(), detail})
		} else {
			n += len(stmts)
			probs = append(probs, vet(src, off, stmts)...)
		}
		off += size
	}
	return n, probs
}

// vet applies policy to parsed statements; stmts were parsed from src[off:],
// and each stmt.SQL is the exact source text, which locates its line.
func vet(src string, off int, stmts statements.Statements) []problem {
	var probs []problem
	for _, s := range stmts {
		if i := strings.Index(src[off:], s.SQL); i >= 0 {
			off += i
		}
		if msg := policy(s.AST); msg != "" {
			probs = append(probs, problem{lineOf(src, off), msg, s.SQL})
		}
		off += len(s.SQL)
	}
	return probs
}

// policy returns why a statement that CockroachDB parses still breaks the
// "runs unchanged on both" rule, or "" if it does not. Keep this list short:
// each entry must be something that parses on both databases (so neither
// the parser nor a Postgres dev run would catch it) but differs in practice.
func policy(stmt tree.Statement) string {
	const serial = "column %s: SERIAL types are not portable: CockroachDB makes them " +
		"INT8 DEFAULT unique_rowid() (unordered 64-bit values, even for SERIAL4), " +
		"Postgres an INT with a sequence; use UUID PRIMARY KEY DEFAULT gen_random_uuid()"
	switch s := stmt.(type) {
	case *tree.CreateTable:
		for _, def := range s.Defs {
			if c, ok := def.(*tree.ColumnTableDef); ok && c.IsSerial {
				return fmt.Sprintf(serial, c.Name.String())
			}
		}
	case *tree.AlterTable:
		for _, cmd := range s.Cmds {
			if c, ok := cmd.(*tree.AlterTableAddColumn); ok && c.ColumnDef.IsSerial {
				return fmt.Sprintf(serial, c.ColumnDef.Name.String())
			}
		}
	case *tree.CreateExtension:
		// CockroachDB accepts only a fixed list of names, as no-ops for
		// features it has built in; Postgres needs the extension installed.
		return "CREATE EXTENSION is not portable: CockroachDB accepts only a few names " +
			"(as no-ops); use core built-ins such as gen_random_uuid() (Postgres 13+)"
	case *tree.CreateTrigger:
		// Triggers are new in CockroachDB (24.3+) with many restrictions, and
		// need a PL/pgSQL function (below).
		return "CREATE TRIGGER is not portable (CockroachDB supports only a subset); " +
			"do this in the Rust code"
	case *tree.CreateRoutine:
		// CockroachDB implements only a subset of SQL and PL/pgSQL routines
		// (missing statements, types, volatility rules): keep logic in Rust.
		return "CREATE FUNCTION/PROCEDURE is not portable (CockroachDB supports only " +
			"a subset of SQL and PL/pgSQL routines); do this in the Rust code"
	case *tree.DoBlock:
		return "DO blocks (PL/pgSQL) are not portable (CockroachDB supports only a " +
			"subset of PL/pgSQL); do this in the Rust code"
	}
	return ""
}

// skipSpaceAndComments returns the offset of the first token in s.
func skipSpaceAndComments(s string) int {
	i := 0
	for i < len(s) {
		switch rest := s[i:]; {
		case strings.ContainsRune(" \t\r\n\f", rune(s[i])):
			i++
		case strings.HasPrefix(rest, "--"):
			j := strings.IndexByte(rest, '\n')
			if j < 0 {
				return len(s)
			}
			i += j + 1
		case strings.HasPrefix(rest, "/*"):
			j := strings.Index(rest, "*/")
			if j < 0 {
				return len(s)
			}
			i += j + 2
		default:
			return i
		}
	}
	return i
}

// lineOf returns the 1-based line number of byte offset off in src.
func lineOf(src string, off int) int { return 1 + strings.Count(src[:off], "\n") }
