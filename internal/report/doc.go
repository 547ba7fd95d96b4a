// Package report turns what a test run does into output: the console
// summary, JSON event lines and JUnit XML. It reads the run's results
// (package result) and knows nothing of how files run.
//
// Console writes the human output of a run: one block per file as it
// completes, a section listing the logs of failed files and a final line
// that counts files. JSON writes one result.Event per line instead, for
// tools. WriteJUnit writes the whole run as JUnit XML for CI systems, one
// testsuite per file and one testcase per sub-test, with the file path as
// classname so the reports of several shards merge without clashes.
//
// Guest output reaches every format through package printable: a guest
// cannot drive the terminal of whoever reads the report.
package report
