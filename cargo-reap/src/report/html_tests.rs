use super::*;
use serde_json::json;

/// A report with one hung suite whose leak, test and in-flight names are hostile markup.
fn hostile() -> Report {
    let leak = json!({
        "pid": 41, "ppid": 1, "pgid": 41, "sid": 41, "state": "S", "comm": "sh",
        "cmdline": ["sh", "-c", "<script>alert(1)</script>", "a&b \"q\" 'x'"],
        "age_ms": 5, "attempt": 1, "reaped": true,
        "test": "t<img src=x onerror=alert(2)>", "attribution": "rerun",
        "findings": ["orphaned"], "notes": ["it <blink>escaped</blink>"],
        "fds": null, "wchan": "do_wait", "syscall": "wait4(pid=-1)"
    });
    let attempt = json!({
        "number": 1, "exit_code": null, "signal": 9, "timed_out": true, "duration_ms": 3000,
        "tests_in_flight": ["</code><script>x()</script>"], "hang_processes": [leak.clone()],
        "kill_rounds": 1, "output_bytes": 0, "interrupted": false,
        "tree": ["pid 41 (sh) <script>tree()</script>"],
        "timeline": {"start_ms": 0, "interval_ms": 100, "processes": [1, 2, 3],
                     "orphans": [0, 0, 1], "threads": [1, 2, 3],
                     "memory_bytes": [1048576, 2097152, 3145728], "open_fds": [3, 4, 5]}
    });
    let suite = json!({
        "id": "p::<marquee>suite</marquee>", "package": "p", "target": "t", "kind": "test",
        "binary": "/bin/<x>", "status": "hang", "duration_ms": 3000, "log": null,
        "attempts": [attempt], "leaks": [leak], "attribution": null
    });
    serde_json::from_value(json!({
        "version": 1, "run_id": "r<1>", "isolation": "cgroup", "isolation_note": "n<o>te",
        "duration_ms": 3100, "exit_code": 102, "build_failed": false, "interrupted": null,
        "suites": [suite],
        "summary": {"suites": 1, "passed": 0, "failed": 0, "crashed": 0, "hung": 1,
                    "flaky": 0, "leaked_processes": 1, "suites_with_leaks": 1},
        "failures": [{"suite": "p::<marquee>suite</marquee>", "status": "hang",
                      "test": "</code><script>x()</script>",
                      "rerun": "cargo reap test -- '<script>rerun()</script>' --exact"}]
    }))
    .unwrap()
}

#[test]
fn hostile_names_and_command_lines_render_as_text() {
    let html = render(&hostile());
    for raw in [
        "<script",
        "<img",
        "<blink>",
        "<marquee>",
        "</code><script",
        "<x>",
        "<o>",
        "r<1>",
    ] {
        assert!(!html.contains(raw), "{raw} reached the page unescaped");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("a&amp;b &quot;q&quot; &#39;x&#39;"));
    assert!(html.contains("t&lt;img src=x onerror=alert(2)&gt;"));
    assert!(html.contains("&lt;script&gt;rerun()&lt;/script&gt;"));
    assert!(html.contains("pid 41 (sh) &lt;script&gt;tree()&lt;/script&gt;"));
    assert!(html.contains("id=\"leak-total\">1<"));
    assert!(html.contains("exit <b id=\"exit-code\">102</b>: a suite hung"));
    assert!(
        html.contains("id=\"timelines\""),
        "the attempt's timeline is drawn"
    );
    assert!(
        !html.contains("id=\"watch\""),
        "no watch section without a watch"
    );
    assert!(
        !html.contains("id=\"loop\""),
        "no loop section without --loop"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing is fetched"
    );
    assert!(!html.contains("<script"), "no script at all");
}

#[test]
fn escapes_every_special_character_and_control() {
    assert_eq!(
        esc("<a href='x'>&\"</a>"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
    );
    assert_eq!(esc("a\x1b[31mb\nc\0"), "a?[31mb\nc?");
}

#[test]
fn a_watched_series_shows_its_fitted_line_slope_and_sentence() {
    let mut r = hostile();
    let timeline = Timeline {
        start_ms: 0,
        interval_ms: 1000,
        processes: (1..=37).collect(),
        orphans: (0..37).collect(),
        threads: vec![1; 37],
        memory_bytes: vec![1 << 20; 37],
        open_fds: vec![3; 37],
        ..Default::default()
    };
    let trend = Trend {
        series: SeriesName::Processes,
        slope_per_hour: 3600.0,
        intercept: 1.0,
        first: 1.0,
        last: 37.0,
        samples: 37,
        warmup_samples: 0,
        max_per_hour: Some(0.0),
        verdict: TrendVerdict::TooFast,
        sentence: "processes: +1 every 1 s (1 → 37 over 36s), 36 orphans of '<sleep>'".into(),
    };
    r.watch = Some(reap_report::WatchReport {
        duration_ms: 37_000,
        timeline,
        trends: vec![trend],
        died_at_ms: Some(36_500),
        died_with: Some(137),
    });
    let html = render(&r);
    assert!(html.contains("id=\"watch\""));
    assert!(html.contains("slope +3600.0/h"), "{html}");
    assert!(html.contains("36 orphans of &#39;&lt;sleep&gt;&#39;"));
    assert!(html.contains("grows too fast"));
    assert!(html.contains("the command died at 36.50s with exit status 137"));
    let watch = html.split("id=\"watch\"").nth(1).unwrap();
    assert_eq!(
        watch.matches("class=\"fit\"").count(),
        1,
        "one fitted line: processes"
    );
    assert!(watch.contains("memory") && watch.contains("open fds"));
}

#[test]
fn odd_series_never_panic() {
    let mut r = hostile();
    let odd = [
        Timeline::default(),
        Timeline {
            interval_ms: 0,
            processes: vec![7],
            orphans: vec![],
            memory_bytes: vec![u64::MAX],
            ..Default::default()
        },
        Timeline {
            start_ms: u64::MAX / 2,
            interval_ms: 1,
            processes: vec![0; 5000],
            orphans: vec![0; 3],
            memory_bytes: vec![0; 5000],
            ..Default::default()
        },
    ];
    for t in odd {
        r.suites[0].attempts[0].timeline = Some(t.clone());
        r.watch = Some(reap_report::WatchReport {
            duration_ms: 0,
            timeline: t,
            trends: vec![Trend {
                series: SeriesName::Memory,
                slope_per_hour: -1e300,
                intercept: 1e300,
                first: 0.0,
                last: 0.0,
                samples: 0,
                warmup_samples: 0,
                max_per_hour: None,
                verdict: TrendVerdict::TooShort,
                sentence: String::new(),
            }],
            died_at_ms: None,
            died_with: None,
        });
        let html = render(&r);
        assert!(html.ends_with("</html>\n"));
        for bad in ["NaN", "inf"] {
            let at = html.find(bad).map(|i| &html[i.saturating_sub(200)..i + 20]);
            assert!(at.is_none(), "{bad} in {at:?}");
        }
    }
}
