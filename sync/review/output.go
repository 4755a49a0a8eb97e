package review

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// CommentLimit is GitHub's limit on a pull-request comment, in characters.
const CommentLimit = 65536

// WriteText prints each change with its diff, then the summary, the way
// `homeostat diff PATH` prints a live plan.
func WriteText(w io.Writer, r Report) error {
	var b strings.Builder
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "%s %s (%s)\n%s", c.Action, c.Object, c.Source, c.Diff)
	}
	fmt.Fprintf(&b, "%s..%s: %s\n", r.Base, r.Head, r.Summary())
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "no schema, not validated: %s\n", strings.Join(r.Skipped, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report for machines.
func WriteJSON(w io.Writer, r Report) error {
	if r.Changes == nil {
		r.Changes = []Change{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown prints a pull-request comment: a summary table and one
// collapsed diff per object, never longer than limit characters. When the
// diffs do not fit, the ones that do are shown and a note says how many
// were left out; the table is cut the same way if even it does not fit.
func WriteMarkdown(w io.Writer, r Report, limit int) error {
	head := fmt.Sprintf("### homeostat diff `%s`\n\n%s → %s: **%s**\n\n", r.Path, mdCode(r.Base.String()), mdCode(r.Head.String()), r.Summary())
	if len(r.Changes) == 0 {
		_, err := io.WriteString(w, head+"No changes.\n"+skippedNote(r))
		return err
	}
	table := []string{"| change | object | source |\n|---|---|---|\n"}
	for _, c := range r.Changes {
		table = append(table, fmt.Sprintf("| %s | `%s` | %s |\n", c.Action, mdCell(c.Object), mdCell(c.Source.String())))
	}
	var details []string
	for _, c := range r.Changes {
		details = append(details, fmt.Sprintf("<details><summary>%s <code>%s</code></summary>\n\n```diff\n%s```\n</details>\n\n",
			c.Action, htmlEscape(c.Object), strings.ReplaceAll(c.Diff, "```", "` ` `")))
	}
	tail := skippedNote(r)
	// Room for the note that says what was left out.
	const noteRoom = 200
	budget := limit - len(head) - len(tail) - noteRoom
	var b strings.Builder
	b.WriteString(head)
	rows, budget := fit(&b, table, budget)
	b.WriteString("\n")
	shown, _ := fit(&b, details, budget-1)
	if rows < len(table) || shown < len(details) {
		fmt.Fprintf(&b, "> **Truncated** to fit a comment: %d of %d objects listed, %d of %d diffs shown. Run `homeostat diff --base %s` locally for the rest.\n\n",
			max(rows-1, 0), len(r.Changes), shown, len(details), r.Base.Ref)
	}
	b.WriteString(tail)
	_, err := io.WriteString(w, b.String())
	return err
}

// fit writes parts while they fit in budget bytes (bytes never undercount
// characters); it returns how many it wrote and the budget left.
func fit(b *strings.Builder, parts []string, budget int) (int, int) {
	for i, p := range parts {
		if len(p) > budget {
			return i, budget
		}
		b.WriteString(p)
		budget -= len(p)
	}
	return len(parts), budget
}

func skippedNote(r Report) string {
	if len(r.Skipped) == 0 {
		return ""
	}
	return "No schema, not validated: " + mdCell(strings.Join(r.Skipped, ", ")) + "\n"
}

func mdCode(s string) string { return "`" + strings.ReplaceAll(s, "`", "'") + "`" }

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace(s)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
