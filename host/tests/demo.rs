//! The quick start's main command, `webcare demo`, run as a user runs it:
//! every connector plugin against the channel simulators, two brands, one
//! fresh SQLite queue.

#[path = "../../tests/src/plugins.rs"]
mod plugins;

use std::process::Command;

#[test]
fn demo_lands_every_channel_in_the_queue() {
    let plugin_dir = plugins::plugin_path("template_connector")
        .parent()
        .expect("plugin dir")
        .to_path_buf();
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_webcare"))
        .args(["demo", "--plugin-dir"])
        .arg(&plugin_dir)
        .arg("--data-dir")
        .arg(data.path().join("demo"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run webcare demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Every pushed delivery was accepted.
    let pushes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("webhook POST"))
        .collect();
    assert_eq!(pushes.len(), 4, "{stdout}");
    for push in &pushes {
        assert!(push.ends_with("-> 200"), "{push}\n{stdout}");
    }
    // Every connector of both brands brought messages in.
    for (brand, connector, channel) in [
        ("acme", "feed", "feed"),
        ("acme", "x", "twitter"),
        ("acme", "facebook", "facebook"),
        ("acme", "email", "email"),
        ("globex", "feed", "feed"),
        ("globex", "forum", "forum"),
        ("globex", "community", "forum"),
    ] {
        let row = stdout
            .lines()
            .find(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() == 5 && cols[0] == brand && cols[1] == connector
            })
            .unwrap_or_else(|| panic!("no summary row for {brand}/{connector}\n{stdout}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], channel, "{row}");
        let messages: u64 = cols[3].parse().expect("message count");
        assert!(
            messages > 0,
            "{brand}/{connector} landed nothing: {row}\n{stdout}"
        );
    }
}
