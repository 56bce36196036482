//! Judging an enclave's console by log level, not by words.
//!
//! The console of an image holds two kinds of lines, and each carries its
//! level:
//! - kernel messages, printed with their syslog priority in front because
//!   the image's command line has `console_msg_format=syslog`:
//!   `<6>[    0.000000] tsc: Fast TSC calibration failed` is information
//!   (level 6), `<3>[...] ...` an error;
//! - init's own log lines (`tracing`'s format: an optional time stamp, then
//!   `TRACE`/`DEBUG`/`INFO`/`WARN`/`ERROR`). Service output never reaches
//!   the console (it goes to `/log`).
//!
//! A kernel line at `warning` or worse, an init line at `WARN` or `ERROR`,
//! and any line that fits neither shape (a panic message, a shell's
//! complaint) is a problem, unless [`KNOWN_HARMLESS`] names it. So a word
//! such as "failed" in a line at level info is not a problem, and an error
//! is one whatever words it uses.
//!
//! The kernel and user space share the console, and the kernel prints a
//! message whole between two pieces of a user-space write: an init line can
//! arrive cut in two by a kernel line (`2026-12-05T05:09<6>[    1.299683]
//! clocksource: ...`, then `:15.188821Z  INFO ...` on the next line).
//! [`untangle`] puts such lines back together before they are judged.

use std::fmt;

/// Kernel messages at this syslog level or more severe are problems:
/// emerg (0), alert, crit, err, warning (4).
pub const WORST_ACCEPTED_KERNEL_LEVEL: u8 = 5;

/// Lines at a problem level that are known to mean nothing wrong, each with
/// why. A line matches when it contains the text (after its prefix).
pub const KNOWN_HARMLESS: &[(&str, &str)] = &[
    // (text, why it is harmless): add one only with the reason, when a
    // harmless line at a problem level appears on some machine.
    (
        "PCI: Fatal: No config space access function found",
        "pci=off (Nitro's command line): an enclave has no PCI bus, and the \
         kernel says so at err level (microvm)",
    ),
    (
        "PCI: System does not support PCI",
        "the same, at warning level",
    ),
    (
        "amd_pstate: the _CPC object is not present in SBIOS or ACPI disabled",
        "AMD hosts: the CPU frequency driver finds no ACPI CPC table in a \
         micro-VM; a guest has no frequency to scale",
    ),
];

/// Where a console line comes from, with its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A kernel message with its syslog level (0 emerg .. 7 debug).
    Kernel(u8),
    /// A line of init's log at this level.
    Init(InitLevel),
    /// A line that has no level: nothing on a healthy console prints one.
    Unknown,
}

/// `tracing`'s levels as init prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InitLevel {
    /// `TRACE`.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl InitLevel {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARN" => Self::Warn,
            "ERROR" => Self::Error,
            _ => return None,
        })
    }
}

/// A console line judged a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number in the console.
    pub line_number: usize,
    /// Where it came from and at which level.
    pub source: Source,
    /// The line as printed.
    pub text: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match self.source {
            Source::Kernel(level) => format!("kernel, {}", kernel_level_name(level)),
            Source::Init(level) => format!("init, {level:?}").to_lowercase(),
            Source::Unknown => "no log level".to_string(),
        };
        write!(f, "{}: [{origin}] {}", self.line_number, self.text)
    }
}

/// Syslog's name of a kernel level.
pub fn kernel_level_name(level: u8) -> &'static str {
    match level {
        0 => "emerg",
        1 => "alert",
        2 => "crit",
        3 => "err",
        4 => "warning",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}

/// One line of the console as it was written, with the 1-based number of the
/// console line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Where the line starts in the console (1-based).
    pub line_number: usize,
    /// The line, put back together if a kernel message cut it.
    pub text: String,
}

/// The lines of `console` as their writers wrote them: a kernel message
/// printed in the middle of a user-space line becomes its own line, and the
/// two pieces of the user-space line are joined again. Carriage returns at
/// line ends are dropped.
pub fn untangle(console: &str) -> Vec<ConsoleLine> {
    let mut lines = Vec::new();
    // A user-space piece cut off by a kernel message: it goes on with the
    // next console line that is not a kernel message.
    let mut cut: Option<ConsoleLine> = None;
    for (index, raw) in console.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        if kernel_record_at(raw, 0) {
            lines.push(ConsoleLine {
                line_number: index + 1,
                text: raw.to_string(),
            });
            continue;
        }
        let mut piece = match cut.take() {
            Some(mut start) => {
                start.text.push_str(raw);
                start
            }
            None => ConsoleLine {
                line_number: index + 1,
                text: raw.to_string(),
            },
        };
        match embedded_kernel_record(&piece.text) {
            Some(at) => {
                lines.push(ConsoleLine {
                    line_number: index + 1,
                    text: piece.text[at..].to_string(),
                });
                piece.text.truncate(at);
                cut = Some(piece);
            }
            None => lines.push(piece),
        }
    }
    // A console that ends inside a cut line keeps the piece it has.
    lines.extend(cut);
    lines
}

/// Where a kernel message starts inside `line` after its first byte, if one
/// does.
fn embedded_kernel_record(line: &str) -> Option<usize> {
    line.match_indices('<')
        .map(|(at, _)| at)
        .find(|&at| at > 0 && kernel_record_at(line, at))
}

/// Whether a kernel message as `console_msg_format=syslog` prints it,
/// `<N>[ SECONDS.MICROS] `, starts at byte `at` of `line`. The time stamp
/// must be there, so a `<6>` in someone's text is not taken for one.
fn kernel_record_at(line: &str, at: usize) -> bool {
    let Some((_, rest)) = kernel_prefix(&line[at..]) else {
        return false;
    };
    let Some(stamp) = rest.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = stamp.split_once(']') else {
        return false;
    };
    let Some((seconds, micros)) = stamp.trim_start().split_once('.') else {
        return false;
    };
    !seconds.is_empty()
        && !micros.is_empty()
        && seconds.bytes().all(|b| b.is_ascii_digit())
        && micros.bytes().all(|b| b.is_ascii_digit())
}

/// Where `line` comes from, and the rest of the line after its prefix.
pub fn classify(line: &str) -> (Source, &str) {
    if let Some((level, rest)) = kernel_prefix(line) {
        return (Source::Kernel(level), rest);
    }
    if let Some((level, rest)) = init_prefix(line) {
        return (Source::Init(level), rest);
    }
    (Source::Unknown, line)
}

/// `<N>` at the start of a kernel line; N holds facility * 8 + level.
fn kernel_prefix(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let priority: u16 = digits.parse().ok()?;
    Some(((priority & 7) as u8, &rest[end + 1..]))
}

/// `[TIME] LEVEL target: message`, as `tracing_subscriber::fmt` prints it.
fn init_prefix(line: &str) -> Option<(InitLevel, &str)> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let (level_word, after) = match InitLevel::parse(first) {
        Some(_) => (first, line),
        None => {
            // A time stamp first: it starts with a digit (RFC 3339 or uptime).
            if !first.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            (words.next()?, line)
        }
    };
    let level = InitLevel::parse(level_word)?;
    let at = after.find(level_word)? + level_word.len();
    Some((level, after[at..].trim_start()))
}

/// Whether a line of this source and level is a problem by level alone.
pub fn is_problem_level(source: Source) -> bool {
    match source {
        Source::Kernel(level) => level < WORST_ACCEPTED_KERNEL_LEVEL,
        Source::Init(level) => level >= InitLevel::Warn,
        Source::Unknown => true,
    }
}

/// Every problem in a console, in order. Empty lines and lines that
/// [`KNOWN_HARMLESS`] names are not problems.
pub fn problems(console: &str) -> Vec<Problem> {
    untangle(console)
        .into_iter()
        .filter_map(|line| {
            if line.text.trim().is_empty() {
                return None;
            }
            let (source, rest) = classify(&line.text);
            if !is_problem_level(source) {
                return None;
            }
            if KNOWN_HARMLESS.iter().any(|(text, _)| rest.contains(text)) {
                return None;
            }
            Some(Problem {
                line_number: line.line_number,
                source,
                text: line.text,
            })
        })
        .collect()
}

/// The problems of `console` once the lines a test provoked on purpose are
/// set aside: every text of `expected` must be in at least one problem line
/// (those lines are then not problems); the texts found in none are
/// returned as missing.
pub fn problems_expecting<'a>(
    console: &str,
    expected: &'a [String],
) -> (Vec<Problem>, Vec<&'a str>) {
    let all = problems(console);
    let missing = expected
        .iter()
        .filter(|text| !all.iter().any(|p| p.text.contains(text.as_str())))
        .map(String::as_str)
        .collect();
    let rest = all
        .into_iter()
        .filter(|p| !expected.iter().any(|text| p.text.contains(text.as_str())))
        .collect();
    (rest, missing)
}

/// What the kernel prints first in an OOM report (`dd invoked oom-killer:
/// gfp_mask=...`): the process that was allocating, not always the victim.
const OOM_REPORT_START: &str = " invoked oom-killer: ";
/// What the kernel prints last in it (`Out of memory: Killed process 123
/// (dd) total-vm:...`), naming the victim in parentheses.
const OOM_REPORT_KILL: &str = "Killed process ";

/// The kernel lines (console line number and text) of every OOM report in
/// `console` whose victim is `victim`: from an "invoked oom-killer" line to
/// the "Killed process N (victim)" line after it. A report that killed
/// another process is not among them.
fn oom_reports_killing(console: &str, victim: &str) -> Vec<Vec<(usize, String)>> {
    let mut reports = Vec::new();
    let mut open: Option<Vec<(usize, String)>> = None;
    for line in untangle(console) {
        let (source, rest) = classify(&line.text);
        if !matches!(source, Source::Kernel(_)) {
            continue;
        }
        if rest.contains(OOM_REPORT_START) {
            open = Some(Vec::new());
        }
        let Some(lines) = open.as_mut() else {
            continue;
        };
        lines.push((line.line_number, line.text.clone()));
        if let Some(at) = rest.find(OOM_REPORT_KILL) {
            let killed = rest[at + OOM_REPORT_KILL.len()..]
                .split_once(" (")
                .and_then(|(_, after)| after.split_once(')'))
                .map(|(name, _)| name);
            if let Some(lines) = open.take()
                && killed == Some(victim)
            {
                reports.push(lines);
            }
        }
    }
    reports
}

/// [`problems_expecting`], with OOM kills a test provoked on purpose: for
/// each name in `oom_victims`, at least one kernel OOM report must have
/// killed a process of that name (`comm`), and the lines of those reports
/// are then not problems (the report is at warning level, with a stack
/// trace). An OOM report that killed anything else stays a problem. Missing
/// victims are returned as `OOM kill of NAME`.
pub fn problems_expecting_oom(
    console: &str,
    expected: &[String],
    oom_victims: &[String],
) -> (Vec<Problem>, Vec<String>) {
    let (mut rest, missing) = problems_expecting(console, expected);
    let mut missing: Vec<String> = missing.into_iter().map(str::to_string).collect();
    for victim in oom_victims {
        let reports = oom_reports_killing(console, victim);
        if reports.is_empty() {
            missing.push(format!("OOM kill of {victim}"));
            continue;
        }
        let provoked: std::collections::HashSet<(usize, String)> =
            reports.into_iter().flatten().collect();
        rest.retain(|problem| !provoked.contains(&(problem.line_number, problem.text.clone())));
    }
    (rest, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_are_judged_by_their_level_not_their_words() {
        let console = "<6>[    0.000000] tsc: Fast TSC calibration failed\n\
                       <6>[    0.100000] tsc: Detected 2596.120 MHz processor\n\
                       <5>[    0.200000] random: crng init done (error free)\n";
        assert!(problems(console).is_empty());
    }

    #[test]
    fn a_kernel_error_or_warning_is_a_problem_whatever_its_words() {
        let console = "<6>[    0.1] all good\n<3>[    0.2] virtio_mmio: probe of x returned -22\n\
                       <4>[    0.3] something odd\n<12>[    0.4] user space warning via kmsg\n";
        let found = problems(console);
        let lines: Vec<usize> = found.iter().map(|p| p.line_number).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(found[0].source, Source::Kernel(3));
        assert_eq!(
            found[2].source,
            Source::Kernel(4),
            "facility bits are ignored"
        );
        assert!(found[0].to_string().contains("kernel, err"));
    }

    #[test]
    fn init_lines_are_judged_by_tracing_level() {
        let console = "2026-12-04T11:00:00.000001Z  INFO init::supervisor: service 'net' failed over to its fallback\n\
                       2026-12-04T11:00:00.000002Z  WARN init::supervisor: service 'x' exited with status 1\n\
                       2026-12-04T11:00:00.000003Z ERROR init: cannot mount /proc\n\
                       DEBUG init: no time stamp\n";
        let found = problems(console);
        assert_eq!(
            found.iter().map(|p| p.source).collect::<Vec<_>>(),
            [
                Source::Init(InitLevel::Warn),
                Source::Init(InitLevel::Error)
            ]
        );
    }

    #[test]
    fn known_harmless_lines_are_not_problems_but_their_neighbours_are() {
        let console = "<3>[    0.317898] PCI: Fatal: No config space access function found\n\
                       <4>[    0.376858] PCI: System does not support PCI\n\
                       <4>[    0.910904] amd_pstate: the _CPC object is not present in SBIOS or ACPI disabled\n\
                       <3>[    0.910905] amd_pstate: something else\n";
        let found = problems(console);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line_number, 4);
    }

    #[test]
    fn expected_problem_lines_must_appear_and_are_then_set_aside() {
        let console = "<6>[ 0.1] fine\n\
                       2026-12-04T19:58:10Z  WARN init::control: request ServiceStop refused\n\
                       <3>[ 0.2] a real error\n";
        let expected = vec![
            "ServiceStop refused".to_string(),
            "never printed".to_string(),
        ];
        let (rest, missing) = problems_expecting(console, &expected);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].line_number, 3);
        assert_eq!(missing, ["never printed"]);
    }

    /// An OOM report as 6.12 prints it (shortened), followed by an error.
    const OOM_CONSOLE: &str = "<6>[ 1.0] fine\n\
        <4>[ 9.1] nats-server invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0\n\
        <4>[ 9.1] CPU: 1 UID: 0 PID: 88 Comm: nats-server Not tainted 6.12.57 #1\n\
        <4>[ 9.1] Call Trace:\n\
        <4>[ 9.1]  <TASK>\n\
        <4>[ 9.1]  dump_stack_lvl+0x4b/0x70\n\
        <4>[ 9.1]  </TASK>\n\
        <6>[ 9.1] Mem-Info:\n\
        <6>[ 9.1] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=dd,pid=120,uid=0\n\
        <3>[ 9.1] Out of memory: Killed process 120 (dd) total-vm:461112kB, anon-rss:380000kB\n\
        <6>[ 9.2] oom_reaper: reaped process 120 (dd), now anon-rss:0kB\n\
        <3>[ 9.5] a real error\n";

    #[test]
    fn a_provoked_oom_kill_is_set_aside_but_what_follows_is_not() {
        let (rest, missing) = problems_expecting_oom(OOM_CONSOLE, &[], &["dd".to_string()]);
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(rest.len(), 1, "{rest:?}");
        assert_eq!(rest[0].text, "<3>[ 9.5] a real error");
        // Without the expectation, every warning of the report is a problem.
        let (rest, _) = problems_expecting_oom(OOM_CONSOLE, &[], &[]);
        assert_eq!(rest.len(), 8);
    }

    #[test]
    fn an_oom_kill_of_another_process_is_not_the_provoked_one() {
        let (rest, missing) = problems_expecting_oom(OOM_CONSOLE, &[], &["ra-web-srv".to_string()]);
        assert_eq!(missing, ["OOM kill of ra-web-srv"]);
        assert_eq!(rest.len(), 8, "the report that killed dd stays a problem");
        // A report cut short (no kill line) sets nothing aside.
        let cut: String = OOM_CONSOLE
            .lines()
            .filter(|line| !line.contains("Killed process"))
            .map(|line| format!("{line}\n"))
            .collect();
        let (rest, missing) = problems_expecting_oom(&cut, &[], &["dd".to_string()]);
        assert_eq!(missing, ["OOM kill of dd"]);
        assert_eq!(rest.len(), 7);
    }

    /// The console of a CI run on an AMD host: the kernel switched clock
    /// source while init was writing a line.
    const CUT_BY_KERNEL: &str = "<6>[    1.200000] fine\n\
        2026-12-05T05:09<6>[    1.299683] clocksource: tsc: mask: 0xffffffffffffffff max_cycles: 0x256bfbe9527\n\
        :15.188821Z  INFO enclave_init::pid1: pid1: parent CID 2 handed to services\n\
        <6>[    1.300000] after\n";

    #[test]
    fn a_line_cut_by_a_kernel_message_is_joined_again() {
        assert!(
            problems(CUT_BY_KERNEL).is_empty(),
            "{:?}",
            problems(CUT_BY_KERNEL)
        );
        let lines = untangle(CUT_BY_KERNEL);
        let texts: Vec<(usize, &str)> = lines
            .iter()
            .map(|line| (line.line_number, line.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                (1, "<6>[    1.200000] fine"),
                (
                    2,
                    "<6>[    1.299683] clocksource: tsc: mask: 0xffffffffffffffff max_cycles: 0x256bfbe9527"
                ),
                (
                    2,
                    "2026-12-05T05:09:15.188821Z  INFO enclave_init::pid1: pid1: parent CID 2 handed to services"
                ),
                (4, "<6>[    1.300000] after"),
            ]
        );
    }

    #[test]
    fn a_cut_line_keeps_its_level_and_a_cutting_error_stays_a_problem() {
        let console = "2026-12-05T05:09:15Z  WA<3>[    2.000001] virtio: an error\n\
                       <6>[    2.000002] an info line between\n\
                       RN init::supervisor: service 'x' ex<6>[    2.1] more\n\
                       ited with status 1\n";
        let found = problems(console);
        let summary: Vec<(usize, Source, &str)> = found
            .iter()
            .map(|p| (p.line_number, p.source, p.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, Source::Kernel(3), "<3>[    2.000001] virtio: an error"),
                (
                    1,
                    Source::Init(InitLevel::Warn),
                    "2026-12-05T05:09:15Z  WARN init::supervisor: service 'x' exited with status 1"
                ),
            ]
        );
    }

    #[test]
    fn a_level_in_someones_text_does_not_cut_the_line() {
        for text in [
            "2026-12-05T05:09:15Z  INFO app: got <6>[ from the peer",
            "2026-12-05T05:09:15Z  INFO app: <6>[1.x] <4>[ 12] <3>[.5]",
        ] {
            let lines = untangle(text);
            assert_eq!(lines.len(), 1, "{text}");
            assert_eq!(lines[0].text, text);
        }
        let unfinished = untangle("2026-12-05T05:09<6>[    1.2] last words\n");
        assert_eq!(
            unfinished
                .iter()
                .map(|line| line.text.as_str())
                .collect::<Vec<_>>(),
            ["<6>[    1.2] last words", "2026-12-05T05:09"],
            "a console that ends inside a cut line keeps the piece"
        );
    }

    #[test]
    fn an_oom_report_inside_a_cut_line_is_set_aside_but_the_line_is_judged() {
        let console = OOM_CONSOLE.replacen(
            "<4>[ 9.1] CPU: 1",
            "2026-12-05T05:10:43Z  WARN init: dd is using a lot of me<4>[ 9.1] CPU: 1",
            1,
        );
        let console = console.replacen("<4>[ 9.1] Call Trace:", "mory\n<4>[ 9.1] Call Trace:", 1);
        let (rest, missing) = problems_expecting_oom(&console, &[], &["dd".to_string()]);
        assert!(missing.is_empty(), "{missing:?}");
        let texts: Vec<&str> = rest.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "2026-12-05T05:10:43Z  WARN init: dd is using a lot of memory",
                "<3>[ 9.5] a real error"
            ]
        );
    }

    #[test]
    fn lines_without_a_level_are_problems() {
        let console = "<6>[ 0.1] fine\nthread 'main' panicked at src/main.rs:1:1\n\n";
        let found = problems(console);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].source, Source::Unknown);
        assert_eq!(found[0].line_number, 2);
    }

    #[test]
    fn malformed_prefixes_are_not_taken_for_levels() {
        for line in [
            "<>[ 0.1] x",
            "<abc> x",
            "<1234> x",
            "2026 NOTICE x",
            "INFOx y",
        ] {
            assert_eq!(classify(line).0, Source::Unknown, "{line}");
        }
        assert_eq!(classify("<0>x").0, Source::Kernel(0));
    }
}
