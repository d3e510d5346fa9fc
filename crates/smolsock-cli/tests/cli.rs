//! The `smolsock` binary as a user meets it without a network: the demo, and bad input.

use std::process::{Command, Output};

fn smolsock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smolsock"))
        .args(args)
        .output()
        .expect("run smolsock")
}

/// Asserts a failure with exactly one line on stderr containing `needle`, and no panic.
fn fails_with(args: &[&str], needle: &str) {
    let out = smolsock(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line on stderr, got:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn demo_runs_all_programs_unprivileged() {
    let out = smolsock(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "[server] udp received 10 bytes from 192.168.69.2:",
        "(ephemeral port, bound by the first send; datagrams up to 1472 bytes)",
        // Not a terminal: the ladder is drawn in ASCII.
        "      client -- SYN seq=0 ---",
        "      client <---",
        "--- SYN,ACK seq=0 ack=1 -- server",
        "state SYN-SENT -> ESTABLISHED",
        "state FIN-WAIT-2 -> TIME-WAIT",
        "state LAST-ACK -> CLOSED",
        "[server] tcp #1 peer 192.168.69.2:",
        "[client] tcp #1 received 5 bytes from 192.168.69.1:9090: \"hello\"",
        "[server] tcp #2 accepted",
        "Demo finished",
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
}

/// `-v` log lines carry microsecond timestamps, so packets and events can be lined up.
#[test]
fn verbose_log_lines_have_microsecond_timestamps() {
    let out = smolsock(&["-vvv", "demo"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .find(|l| l.starts_with('['))
        .unwrap_or_default();
    // [2026-11-30T09:35:07.315624Z TRACE smoltcp::...]
    let stamp = first.get(1..28).unwrap_or_default();
    let (date, time) = stamp.split_once('T').unwrap_or_default();
    let fraction = time.split_once('.').map(|(_, f)| f).unwrap_or_default();
    assert!(
        date.len() == 10 && fraction.len() == 7 && fraction.ends_with('Z'),
        "no microsecond timestamp in {first:?}"
    );
}

#[test]
fn demo_draws_unicode_arrows_when_asked_and_ascii_in_a_pipe() {
    let rungs = |args: &[&str]| -> Vec<String> {
        let out = smolsock(args);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("      client ") && l.ends_with(" server"))
            .map(str::to_string)
            .collect()
    };
    let piped = rungs(&["demo"]);
    assert!(piped.len() > 10, "{piped:?}");
    assert!(piped.iter().all(|l| l.is_ascii()), "{piped:?}");
    assert_eq!(rungs(&["demo", "--arrows", "ascii"]).len(), piped.len());
    let unicode = rungs(&["demo", "--arrows", "unicode"]);
    assert_eq!(unicode.len(), piped.len());
    for needle in [
        "client ── SYN seq=0 ───",
        "◀───",
        " SYN,ACK seq=0 ack=1 ── server",
    ] {
        assert!(
            unicode.iter().any(|l| l.contains(needle)),
            "no rung contains {needle:?}: {unicode:#?}"
        );
    }
}

#[test]
fn demo_json_is_one_object_per_line() {
    let out = smolsock(&["demo", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        values
            .iter()
            .any(|v| v["event"] == "received" && v["text"] == "hello")
    );
    assert!(
        values
            .iter()
            .any(|v| v["event"] == "packet" && v["flags"] == serde_json::json!(["SYN"]))
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_a_failure() {
    fails_with(&["udp-recv", "--bogus"], "unexpected argument '--bogus'");
    fails_with(&["udp-recv", "--port", "0"], "port 0 is not allowed");
    fails_with(&["udp-recv", "--port", "65536"], "out of range");
    fails_with(&["tcp-server", "--port", "http"], "not a port number");
    fails_with(&["tcp-client", "--to", "192.168.69.100"], "is not IP:PORT");
    fails_with(
        &["tcp-client", "--to", "192.168.69.300:9090"],
        "not an IPv4 address",
    );
    fails_with(
        &["udp-send", "--to", "192.168.69.100:0", "x"],
        "port 0 is not allowed",
    );
    fails_with(&["udp-recv", "--ip", "192.168.69.1"], "prefix length");
    fails_with(
        &["udp-recv", "--ip", "192.168.69.1/40"],
        "prefix length from 1 to 32",
    );
    fails_with(&["udp-recv", "--mac", "01:00:5e:00:00:01"], "unicast");
    fails_with(
        &["udp-recv", "--tap", "a", "--tun", "b"],
        "cannot be used with",
    );
    fails_with(&["tcp-server", "--backlog", "0"], "backlog");
    fails_with(&["demo", "--pcap", "/tmp/x.pcap"], "--pcap needs a TAP");
    fails_with(
        &[
            "udp-recv",
            "--gateway",
            "192.168.69.254",
            "--tap",
            "definitely-missing0",
        ],
        "does not exist",
    );
}

#[test]
fn addresses_a_device_must_not_use_are_usage_errors() {
    let line = usage_error(
        &["udp-recv", "--ip", "192.168.69.0/24"],
        "network or broadcast address of 192.168.69.0/24",
    );
    assert!(line.contains("192.168.69.0 is"), "{line}");
    usage_error(
        &["udp-recv", "--ip", "192.168.69.255/24"],
        "network or broadcast",
    );
    usage_error(
        &["tcp-server", "--ip", "10.1.2.3/30"],
        "network or broadcast",
    );
    usage_error(&["udp-recv", "--mac", "00:00:00:00:00:00"], "all-zero");
    usage_error(&["udp-recv", "--mac", "01:00:5e:00:00:01"], "unicast");
    usage_error(
        &[
            "udp-recv",
            "--gateway",
            "192.168.69.1",
            "--tap",
            "definitely-missing0",
        ],
        "--gateway 192.168.69.1 is the stack's own address",
    );
    usage_error(
        &[
            "udp-recv",
            "--ip",
            "10.0.0.5/24",
            "--gateway",
            "10.0.0.5",
            "--tap",
            "definitely-missing0",
        ],
        "own address",
    );
    usage_error(
        &[
            "udp-recv",
            "--gateway",
            "10.0.0.1",
            "--tap",
            "definitely-missing0",
        ],
        "outside the stack's subnet 192.168.69.0/24",
    );
    usage_error(
        &[
            "udp-recv",
            "--gateway",
            "192.168.69.255",
            "--tap",
            "definitely-missing0",
        ],
        "broadcast",
    );
    // A /31 or a /32 has no network or broadcast address: every address is a host's, and
    // these get as far as the (missing) device.
    for ip in ["10.0.0.0/31", "10.0.0.1/31", "10.0.0.0/32"] {
        fails_with(
            &["udp-recv", "--ip", ip, "--tap", "definitely-missing0"],
            "does not exist",
        );
    }
}

/// Asserts a failure with exit status 1 and one line on stderr containing every needle.
fn fails_once(args: &[&str], needles: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_smolsock"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run smolsock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: exit status; {stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line, got:\n{stderr}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unwritable_pcap_file_is_one_line_and_exit_1_before_any_traffic() {
    // Checked before the device is opened: no TAP is needed to see these.
    fails_once(
        &[
            "udp-recv",
            "--pcap",
            "/dev/full",
            "--tap",
            "definitely-missing0",
        ],
        &[
            "smolsock: error: cannot write pcap file /dev/full:",
            "No space left",
        ],
    );
    let dir = std::env::temp_dir();
    let dir = dir.to_str().unwrap();
    fails_once(
        &["--pcap", dir, "tcp-server", "--tap", "definitely-missing0"],
        &["cannot write pcap file", "directory"],
    );
    fails_once(
        &[
            "tcp-client",
            "--to",
            "192.168.69.100:9090",
            "--pcap",
            "/nonexistent-dir/x.pcap",
            "x",
        ],
        &[
            "cannot write pcap file /nonexistent-dir/x.pcap",
            "No such file",
        ],
    );
}

#[test]
fn no_subcommand_prints_the_usage_on_stderr_and_exits_2() {
    for args in [&[][..], &["--json"][..], &["-v", "--pcap", "x.pcap"][..]] {
        let out = smolsock(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr.contains("Usage: smolsock"), "{args:?}: {stderr}");
        for cmd in [
            "udp-recv",
            "udp-send",
            "tcp-server",
            "tcp-client",
            "demo",
            "compare",
        ] {
            assert!(
                stderr.contains(cmd),
                "{args:?}: {cmd} missing from\n{stderr}"
            );
        }
    }
}

#[test]
fn help_lists_every_program() {
    let out = smolsock(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "udp-recv",
        "udp-send",
        "tcp-server",
        "tcp-client",
        "iperf3",
        "demo",
    ] {
        assert!(text.contains(cmd), "{text}");
    }
}

/// Asserts a usage error: exit status 2, one line on stderr containing `needle`, no panic
/// and no backtrace, nothing on stdout. Returns the line.
fn usage_error(args: &[&str], needle: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smolsock"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run smolsock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: exit status; {stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line on stderr, got:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    stderr.into_owned()
}

#[test]
fn smoltcp_only_flags_are_refused_with_the_kernel_stack() {
    let kernel = ["--stack", "kernel"];
    let cases: [(&[&str], &str); 7] = [
        (&["udp-recv", "--tap", "tap0"], "--tap"),
        (&["udp-recv", "--tun", "tun0"], "--tun"),
        (&["udp-recv", "--ip", "192.168.69.1/24"], "--ip"),
        (&["udp-recv", "--mac", "02:00:00:00:00:02"], "--mac"),
        (&["udp-recv", "--gateway", "192.168.69.254"], "--gateway"),
        (&["tcp-server", "--tcp-buf", "4096"], "--tcp-buf"),
        (
            &["udp-send", "--to", "127.0.0.1:9090", "--tap", "tap0", "x"],
            "--tap",
        ),
    ];
    for (args, flag) in cases {
        let mut full = vec![args[0]];
        full.extend_from_slice(&kernel);
        full.extend_from_slice(&args[1..]);
        let line = usage_error(&full, flag);
        assert!(line.contains("--stack kernel"), "{line}");
    }
    // The flag before the subcommand, or after it: both global.
    let dir = std::env::temp_dir().join(format!("smolsock-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("x.pcap");
    let pcap = pcap.to_str().unwrap();
    usage_error(
        &[
            "--pcap",
            pcap,
            "tcp-client",
            "--stack",
            "kernel",
            "--to",
            "127.0.0.1:9090",
            "x",
        ],
        "--pcap",
    );
    usage_error(&["udp-recv", "--stack", "kernel", "--pcap", pcap], "--pcap");
    assert!(
        !std::path::Path::new(pcap).exists(),
        "a refused --pcap must not create its file"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // The same flags are fine with the default stack up to the device (which is missing).
    fails_with(
        &[
            "udp-recv",
            "--stack",
            "smoltcp",
            "--tap",
            "definitely-missing0",
        ],
        "does not exist",
    );
}

#[test]
fn bad_stack_and_compare_flags_are_usage_errors() {
    usage_error(&["udp-recv", "--stack", "bogus"], "'bogus'");
    usage_error(
        &["tcp-client", "--stack", "std", "--to", "127.0.0.1:9090"],
        "--stack",
    );
    usage_error(&["tcp-server", "--stack"], "--stack");
    usage_error(&["compare", "--json", "--markdown"], "cannot be used with");
    usage_error(&["compare", "--markdown", "--json"], "cannot be used with");
}

#[test]
fn program_help_mentions_the_stack_flag() {
    for cmd in ["udp-recv", "udp-send", "tcp-server", "tcp-client", "iperf3"] {
        let out = smolsock(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--stack") && text.contains("kernel") && text.contains("smoltcp"),
            "{cmd} --help:\n{text}"
        );
        assert!(text.contains("smoltcp only"), "{cmd} --help:\n{text}");
    }
}

#[test]
fn bad_fault_specifications_get_one_line_and_exit_2() {
    for (spec, needle) in [
        ("drop=1%", "unknown key"),
        ("loss=5", "percentage"),
        ("loss=101%", "above 100%"),
        ("delay=10", "us, ms or s"),
        ("rate=10mbps", "kbit"),
        ("seed=x", "seed"),
        ("", "empty"),
    ] {
        fails_with(&["tcp-server", "--faults", spec], needle);
        assert_eq!(
            smolsock(&["udp-recv", "--faults", spec]).status.code(),
            Some(2)
        );
    }
    fails_with(
        &[
            "tcp-client",
            "--stack",
            "kernel",
            "--to",
            "127.0.0.1:9",
            "--faults",
            "loss=1%",
        ],
        "--faults configures the smoltcp stack",
    );
}

/// `--help` of `smolsock COMMAND` (or of `smolsock` when `command` is empty), short or long.
fn help(command: &str, flag: &str) -> String {
    let mut args = vec![];
    if !command.is_empty() {
        args.push(command);
    }
    args.push(flag);
    let out = smolsock(&args);
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The five programs, the demo and compare, as `smolsock --help` lists them.
const COMMANDS: [&str; 7] = [
    "udp-recv",
    "udp-send",
    "tcp-server",
    "tcp-client",
    "iperf3",
    "demo",
    "compare",
];

#[test]
fn top_level_help_says_what_smolsock_is_not_the_package_description() {
    for flag in ["-h", "--help"] {
        let text = help("", flag);
        assert!(
            !text.contains(env!("CARGO_PKG_DESCRIPTION")),
            "{flag}: the package description is for crates.io, not for a user:\n{text}"
        );
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("The four socket programs of a classic Python tutorial")
                && first.contains("smoltcp")
                && first.contains("Linux kernel"),
            "{flag}: {first}"
        );
    }
    let long = help("", "--help");
    for needle in [
        "--stack kernel",
        "smolsock demo",
        "smolsock compare",
        "docs/tutorial.md",
    ] {
        assert!(long.contains(needle), "--help lacks {needle:?}:\n{long}");
    }
}

/// The short help's line for `flag` (`      --json   Print ...`) in `smolsock COMMAND -h`.
fn flag_line(command: &str, flag: &str) -> String {
    let help = help(command, "-h");
    help.lines()
        .find(|l| l.trim_start().starts_with(flag) && l.contains("  "))
        .unwrap_or_else(|| panic!("no {flag} in:\n{help}"))
        .to_string()
}

#[test]
fn each_commands_json_help_says_what_that_command_prints() {
    for program in ["udp-recv", "udp-send", "tcp-server", "tcp-client", "iperf3"] {
        let line = flag_line(program, "--json");
        assert!(
            line.contains("every event as one JSON object per line")
                && line.contains("docs/events.md")
                && !line.contains("compare"),
            "{program}: {line}"
        );
    }
    let demo = flag_line("demo", "--json");
    assert!(
        demo.contains("every packet on the link") && !demo.contains("compare"),
        "{demo}"
    );
    let compare = flag_line("compare", "--json");
    assert!(compare.contains("one JSON document"), "{compare}");
    // Before the command, `--json` is the same flag: the demo prints JSON either way.
    for args in [&["--json", "demo"][..], &["demo", "--json"][..]] {
        let out = smolsock(args);
        let first = String::from_utf8_lossy(&out.stdout);
        let first = first.lines().next().unwrap_or_default();
        assert!(
            serde_json::from_str::<serde_json::Value>(first).is_ok(),
            "{args:?}: {first}"
        );
    }
}

#[test]
fn message_arguments_are_documented_as_one_message_each() {
    let send = help("udp-send", "--help");
    assert!(send.contains("One datagram per argument"), "{send}");
    let client = help("tcp-client", "--help");
    assert!(client.contains("One message per argument"), "{client}");
    for text in [send, client] {
        assert!(text.contains("no newline added"), "{text}");
    }
}

/// The flags `smolsock COMMAND -h` lists, without `--help`.
fn help_flags(command: &str) -> std::collections::BTreeSet<String> {
    help(command, "-h")
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            // A short flag before its long one (`-v, --verbose`, `-c, --client <IP>`).
            let line = match line.split_once(", ") {
                Some((short, long)) if short.len() == 2 && short.starts_with('-') => long,
                _ => line,
            };
            let flag = line.split([' ', ',']).next()?.trim_end_matches("...");
            (flag.starts_with("--") && flag != "--help").then(|| flag.to_string())
        })
        .collect()
}

/// The README's "Every flag" table: for each command, the flags it lists.
fn readme_flags() -> std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>> {
    let readme = include_str!("../../../README.md");
    let table = readme
        .split_once("### Every flag")
        .expect("the README has a section \"Every flag\"")
        .1;
    let mut flags: std::collections::BTreeMap<_, std::collections::BTreeSet<String>> =
        COMMANDS.iter().map(|c| (*c, Default::default())).collect();
    let rows = table
        .lines()
        .skip_while(|l| !l.starts_with("| flag |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    for row in rows {
        let cells: Vec<&str> = row.split(" | ").collect();
        let (flag_cell, commands) = (cells[0], cells[1]);
        let flag = flag_cell
            .split(['`', ' ', ','])
            .find(|w| w.starts_with("--"))
            .unwrap_or_else(|| panic!("no --flag in the row {row}"));
        let named: Vec<&str> = if commands == "every command" {
            COMMANDS.to_vec()
        } else if commands == "the five programs" {
            COMMANDS[..5].to_vec()
        } else {
            commands
                .split(", ")
                .map(|c| c.trim_matches('`'))
                .inspect(|c| assert!(COMMANDS.contains(c), "{c} in the row {row}"))
                .collect()
        };
        for command in named {
            flags.get_mut(command).unwrap().insert(flag.to_string());
        }
    }
    flags
}

/// The README lists every flag of every command, and no flag a command lacks.
#[test]
fn readme_flag_table_matches_every_commands_help() {
    let readme = readme_flags();
    for command in COMMANDS {
        let help = help_flags(command);
        assert!(help.contains("--json"), "{command}: {help:?}");
        let listed = &readme[command];
        let missing: Vec<_> = help.difference(listed).collect();
        let extra: Vec<_> = listed.difference(&help).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "README's \"Every flag\" for {command}: missing {missing:?}, not a flag of it {extra:?}"
        );
    }
}

#[test]
fn iperf3_client_flags_need_a_client_and_sane_values() {
    for args in [
        &["iperf3", "-t", "5"][..],
        &["iperf3", "-R"],
        &["iperf3", "-P", "2"],
    ] {
        let line = usage_error(args, "required arguments were not provided");
        assert!(line.contains("--client <IP>"), "{args:?}: {line}");
    }
    usage_error(&["iperf3", "-c", "10.0.0.1", "-1"], "cannot be used with");
    usage_error(&["iperf3", "-s", "-c", "10.0.0.1"], "cannot be used with");
    usage_error(
        &["iperf3", "-c", "10.0.0.1", "-t", "2", "-n", "1"],
        "cannot be used with",
    );
    usage_error(&["iperf3", "-c", "10.0.0.1", "-P", "17"], "1..=16");
    // UDP: -u needs a client, -b and -l need -u; a rate that is not one, or more than 64
    // bits hold; a datagram too short for iperf3's header or longer than UDP carries.
    let line = usage_error(&["iperf3", "-u"], "required arguments were not provided");
    assert!(line.contains("--client <IP>"), "{line}");
    for args in [
        &["iperf3", "-c", "10.0.0.1", "-b", "10M"][..],
        &["iperf3", "-c", "10.0.0.1", "-l", "100"],
    ] {
        let line = usage_error(args, "required arguments were not provided");
        assert!(line.contains("--udp"), "{args:?}: {line}");
    }
    for rate in ["fast", "-1M", "1e30", "10X", "M", "NaN"] {
        let flag = format!("--bitrate={rate}");
        usage_error(&["iperf3", "-c", "10.0.0.1", "-u", &flag], "is not a rate");
    }
    usage_error(
        &["iperf3", "-c", "10.0.0.1", "-u", "-l", "11"],
        "12..=65507",
    );
    usage_error(
        &["iperf3", "-c", "10.0.0.1", "-u", "-l", "65508"],
        "12..=65507",
    );
    usage_error(&["iperf3", "-c", "0.0.0.0"], "cannot be a destination");
    usage_error(
        &["iperf3", "--stack", "kernel", "--tcp-buf", "4096"],
        "--tcp-buf",
    );
}
