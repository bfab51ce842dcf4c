//! Golden files for every TwiML shape (`tests/golden/twiml/*.xml`, rewritten with
//! `UPDATE_EXPECT=1`), each parsed back as XML; and the `contact_uri` → `<Dial>` noun mapping.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::*;

/// Renders `response`, compares it with the golden file `name.xml`, and parses it as XML.
fn check(name: &str, response: Response) {
    let xml = response.to_xml();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/twiml/{name}.xml"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, format!("{xml}\n")).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} (UPDATE_EXPECT=1 writes it)", path.display()));
    assert_eq!(xml, golden.trim_end_matches('\n'), "{name}");
    assert_well_formed(&xml);
    assert_eq!(parse(&xml).map(|verbs| verbs.len()), Ok(response.verbs.len()), "{name}");
}

/// Parses `xml` to the end: well-formed, balanced, one `<Response>` root.
fn assert_well_formed(xml: &str) {
    let mut reader = Reader::from_str(xml);
    let (mut depth, mut roots) = (0usize, 0);
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                if depth == 0 {
                    roots += 1;
                    assert_eq!(start.name().as_ref(), b"Response");
                }
                depth += 1;
            }
            Ok(Event::Empty(start)) if depth == 0 => {
                roots += 1;
                assert_eq!(start.name().as_ref(), b"Response");
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => panic!("not XML: {err}: {xml}"),
        }
    }
    assert_eq!((depth, roots), (0, 1), "{xml}");
}

fn say(text: &str) -> Say {
    Say {
        text: text.into(),
        voice: Some("Polly.Joanna".into()),
        language: Some("en-US".into()),
        repeat: None,
    }
}

#[test]
fn golden_twiml() {
    check("empty", Response::default());
    check(
        "say",
        Response::new(vec![Verb::Say(Say {
            text: "Hello Monkey".into(),
            voice: Some("man".into()),
            language: Some("fr".into()),
            repeat: Some(3),
        })]),
    );
    check(
        "play",
        Response::new(vec![Verb::Play(Play { url: "https://example.com/hold.mp3".into(), repeat: Some(0) })]),
    );
    check("pause", Response::new(vec![Verb::Pause { length: Some(2) }, Verb::Pause { length: None }]));
    check(
        "menu",
        Response::new(vec![
            Verb::Gather(Gather {
                action: Some("/voice/ivr?node=main".into()),
                method: Some(Method::Post),
                input: Some("dtmf".into()),
                timeout: Some(5),
                num_digits: Some(1),
                action_on_empty_result: Some(true),
                prompts: vec![
                    Prompt::Say(say("Press 1 for Sales, or 2 for Support.")),
                    Prompt::Pause { length: Some(1) },
                ],
                ..Gather::default()
            }),
            Verb::Redirect { url: "/voice/ivr?node=main&retry=1".into(), method: Some(Method::Post) },
        ]),
    );
    check(
        "gather-silent",
        Response::new(vec![Verb::Gather(Gather { finish_on_key: Some(String::new()), ..Gather::default() })]),
    );
    check("hangup", Response::new(vec![Verb::Say(say("Goodbye.")), Verb::Hangup]));
    check(
        "reject",
        Response::new(vec![Verb::Reject { reason: Some(RejectReason::Busy) }, Verb::Reject { reason: None }]),
    );
    check(
        "voicemail",
        Response::new(vec![
            Verb::Say(say("Nobody can take your call. Leave a message after the tone.")),
            Verb::Record(Record {
                action: Some("/voice/voicemail".into()),
                method: Some(Method::Post),
                timeout: Some(5),
                max_length: Some(120),
                finish_on_key: Some("#".into()),
                play_beep: Some(true),
                recording_status_callback: Some("/voice/recording".into()),
            }),
        ]),
    );
    for (name, target) in [
        ("dial-number", DialTarget::Number("+15551230000".into())),
        ("dial-client", DialTarget::Client("alice".into())),
        ("dial-sip", DialTarget::Sip("sip:alice@pbx.example.com".into())),
        (
            "dial-conference",
            DialTarget::Conference(Conference {
                name: "WT00000000000000000000000000000001".into(),
                start_conference_on_enter: Some(true),
                end_conference_on_exit: Some(false),
                beep: Some("false".into()),
                wait_url: Some("https://example.com/hold.mp3".into()),
                wait_method: Some(Method::Get),
                status_callback: Some("/voice/conference?call=CA1&a=b".into()),
                status_callback_event: Some("start end join leave hold mute".into()),
                status_callback_method: Some(Method::Post),
                participant_label: Some("customer".into()),
            }),
        ),
    ] {
        check(
            name,
            Response::new(vec![Verb::Dial(Dial {
                target,
                action: Some("/voice/dial?task=WT00000000000000000000000000000001".into()),
                method: Some(Method::Post),
                timeout: Some(20),
                caller_id: None,
                answer_on_bridge: Some(true),
            })]),
        );
    }
    check(
        "hold-loop",
        Response::new(vec![
            Verb::Say(say("You are number 2 in line. The expected wait is about 3 minutes.")),
            Verb::Play(Play { url: "https://example.com/hold.mp3".into(), repeat: None }),
            Verb::Redirect { url: "/voice/wait?task=WT1".into(), method: Some(Method::Post) },
        ]),
    );
    check(
        "message",
        Response::new(vec![Verb::Message(Message {
            body: "Thanks, an agent will reply soon.".into(),
            ..Message::default()
        })]),
    );
    check(
        "message-media",
        Response::new(vec![Verb::Message(Message {
            body: "Here is the form.".into(),
            to: Some("+15551230000".into()),
            from: Some("+15559870000".into()),
            media: vec!["https://example.com/form.pdf".into()],
        })]),
    );
    check(
        "escaping",
        Response::new(vec![
            Verb::Say(Say { text: r#"Tom & Jerry's <"café"> nécessaire"#.into(), ..Say::default() }),
            Verb::Redirect { url: "/voice/ivr?a=1&b=\"2\"".into(), method: None },
        ]),
    );
}

#[test]
fn contact_uris_choose_the_dial_noun() {
    for (contact_uri, expected) in [
        ("+15551230000", Some(DialTarget::Number("+15551230000".into()))),
        (" client:alice ", Some(DialTarget::Client("alice".into()))),
        ("sip:alice@pbx.example.com", Some(DialTarget::Sip("sip:alice@pbx.example.com".into()))),
        ("sips:bob@pbx.example.com", Some(DialTarget::Sip("sips:bob@pbx.example.com".into()))),
        ("client:", None),
        ("5551230000", None),
        ("+1555-123", None),
        ("+1234567890123456", None),
        ("", None),
    ] {
        assert_eq!(DialTarget::from_contact_uri(contact_uri), expected, "{contact_uri:?}");
    }
}

#[test]
fn parsing_reads_back_verbs_nouns_attributes_and_escaped_text() {
    let text = "Tom & Jerry's <3 \"quotes\" ☎";
    let response = Response::new(vec![
        Verb::Say(say(text)),
        Verb::Dial(Dial {
            target: DialTarget::Client("alice".into()),
            action: Some("/voice/dial-status?a=1&b=2".into()),
            method: None,
            timeout: Some(20),
            caller_id: None,
            answer_on_bridge: None,
        }),
    ]);

    let verbs = parse(&response.to_xml()).unwrap();

    assert_eq!(verbs[0].name, "Say");
    assert_eq!(verbs[0].text, text);
    assert_eq!(verbs[1].attribute("action"), Some("/voice/dial-status?a=1&b=2"));
    assert_eq!((verbs[1].children[0].name.as_str(), verbs[1].children[0].text.as_str()), ("Client", "alice"));
    assert_eq!(
        parse("<Response><Say>x</Response>"),
        Err(ParseError::Xml("ill-formed document: expected `</Say>`, but `</Response>` was found".into()))
    );
    assert_eq!(parse("<Other/>"), Err(ParseError::Root("Other".into())));
}

#[test]
fn a_long_message_with_markup_and_emoji_round_trips_exactly() {
    let start = "<b>Tom</b> & \"Jerry\" 🎉👍🏽 ";
    let body = format!("{start}{}", "ü".repeat(1_600 - start.chars().count()));
    let message = Message { body: body.clone(), to: None, from: None, media: Vec::new() };

    let xml = Response::new(vec![Verb::Message(message)]).to_xml();

    assert!(xml.contains("&lt;b&gt;Tom&lt;/b&gt; &amp; "), "{xml}");
    assert_eq!(parse(&xml).unwrap()[0].text, body);
}

/// Text and attributes lose the characters XML 1.0 cannot hold, even escaped; the rest is kept.
fn check_xml_chars(input: &str, kept: &str) {
    let message = Message { body: input.into(), to: Some(input.into()), from: None, media: Vec::new() };
    let xml = Response::new(vec![Verb::Message(message)]).to_xml();
    let forbidden = |c: char| matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    assert!(!xml.chars().any(forbidden), "{input:?}: {xml:?}");
    let verbs = parse(&xml).unwrap();
    assert_eq!((verbs[0].text.as_str(), verbs[0].attribute("to")), (kept, Some(kept)), "{input:?}");
}

#[test]
fn characters_xml_cannot_hold_are_left_out() {
    check_xml_chars("plain", "plain");
    check_xml_chars("A\u{1}da\u{b}\0", "Ada");
    check_xml_chars("tab\tnew\nline\r end", "tab\tnew\nline\r end");
    check_xml_chars("\u{1b}[31mred\u{1b}[0m", "[31mred[0m");
    check_xml_chars("a\u{fffe}b\u{ffff}c\u{fffd}", "abc\u{fffd}");
    check_xml_chars("ü€𝄞 <b> & \"q\"", "ü€𝄞 <b> & \"q\"");
    check_xml_chars("\u{7f}\u{85}x", "\u{7f}\u{85}x");
}
