package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckStatements(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		wantErr string // "" means the statement must pass
	}{
		{"create table", `CREATE TABLE orders (
			id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
			created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
			items JSONB NOT NULL,
			total NUMERIC(12,2) NOT NULL CHECK (total >= 0))`, ""},
		{"upsert-ish insert", `INSERT INTO orders (id, items, total) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO NOTHING RETURNING id, created_at`, ""},
		{"select for update", `SELECT total FROM orders WHERE id = $1 FOR UPDATE`, ""},
		{"create index", `CREATE INDEX IF NOT EXISTS orders_created_at_idx ON orders (created_at)`, ""},
		{"transaction", `BEGIN ISOLATION LEVEL SERIALIZABLE; UPDATE orders SET total = $2 WHERE id = $1; COMMIT`, ""},
		{"syntax error", `SELEC 1`, "syntax error"},
		{"unimplemented in crdb", `ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id) DEFERRABLE INITIALLY DEFERRED`, "unimplemented"},
		{"serial", `CREATE TABLE t (id SERIAL PRIMARY KEY)`, "column id: SERIAL types are not portable"},
		{"bigserial via alter", `ALTER TABLE t ADD COLUMN n BIGSERIAL`, "column n: SERIAL"},
		{"extension", `CREATE EXTENSION IF NOT EXISTS postgis`, "CREATE EXTENSION"},
		{"plpgsql function", `CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN NEW.updated_at := now(); RETURN NEW; END $$`, "CREATE FUNCTION"},
		{"trigger", `CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch()`, "CREATE TRIGGER"},
		{"do block", `DO $$ BEGIN RAISE NOTICE 'hi'; END $$`, "DO blocks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs := check(tt.sql)
			if tt.wantErr == "" {
				if len(probs) != 0 {
					t.Fatalf("want no problem, got %+v", probs)
				}
				return
			}
			if len(probs) != 1 || !strings.Contains(probs[0].msg, tt.wantErr) {
				t.Fatalf("want one problem containing %q, got %+v", tt.wantErr, probs)
			}
		})
	}
}

const goodFile = `-- orders schema
CREATE TABLE orders (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), note TEXT);

/* a ; inside a comment and */ INSERT INTO orders (note) VALUES ('a;b') RETURNING id;
SELECT $$ ; $$;
`

// badFile has a syntax error on line 4 and a SERIAL column on line 7, with a
// good statement between them that must still be checked.
const badFile = `CREATE TABLE a (id UUID PRIMARY KEY);

-- broken:
CREATE TABLE b (
  x INT CHECK (x > )
);
CREATE TABLE c (id SERIAL PRIMARY KEY); CREATE EXTENSION pgcrypto;
SELECT 1;
`

func TestCheckLines(t *testing.T) {
	n, probs := check(goodFile)
	if n != 3 || len(probs) != 0 {
		t.Fatalf("good file: want 3 statements, no problems; got %d, %+v", n, probs)
	}
	_, probs = check(badFile)
	var got []int
	for _, p := range probs {
		got = append(got, p.line)
	}
	if want := []int{4, 7, 7}; len(probs) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("want problems on lines %v, got %v: %+v", want, got, probs)
	}
	if !strings.Contains(probs[0].detail, "x INT CHECK (x > )") {
		t.Errorf("detail should show the statement, got %q", probs[0].detail)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("001_good.sql", goodFile)
	write("002_good.sql", "SELECT 1; SELECT 2;")
	write("notes.txt", "not SQL")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("sub/bad.sql", "nope") // directories are not recursed into

	var out, errOut bytes.Buffer
	if code := run([]string{dir}, &out, &errOut); code != 0 {
		t.Fatalf("dir: exit %d, stderr %q", code, errOut.String())
	}
	if want := "crdbcheck: 5 statements in 2 files parse as CockroachDB SQL\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}

	bad := write("bad.sql", badFile)
	out.Reset()
	errOut.Reset()
	if code := run([]string{good, bad}, &out, &errOut); code != 1 {
		t.Fatalf("bad: exit %d, want 1", code)
	}
	for _, want := range []string{bad + ":4: at or near \")\": syntax error", bad + ":7: column id: SERIAL", bad + ":7: CREATE EXTENSION"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if out.Len() != 0 {
		t.Errorf("no summary expected on failure, got %q", out.String())
	}

	for _, args := range [][]string{nil, {filepath.Join(dir, "missing.sql")}} {
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("run(%q): exit %d, want 2", args, code)
		}
	}
}
