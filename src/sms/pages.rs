//! A conversation's messages in pages, so that n texts write O(n) bytes rather than O(n²).
//!
//! The conversation's head (`store::ConversationV2`, kept in memory and rewritten with each
//! change) holds its state and only the newest messages, the open page. Once the open page
//! holds more than [`MESSAGES_PER_PAGE`], its oldest messages are sealed into a page record
//! (`store::MessagePageV1`), written once, in the same atomic write as the head that stops
//! holding them, and never rewritten. A conversation that starts again (a new walk through the
//! IVR, or its end) deletes the pages it no longer has in the write that drops them.
//!
//! Pure functions: what to seal and what one change writes. Reading pages back is the caller's
//! (`Sms::conversation`).

use crate::store::{
    ConversationRecord, ConversationV1, ConversationV2, KeyedWrite, MessagePageRecord, MessagePageV1,
    MessageV1, OutboxRecord, OutboxV1, Store, StoreError,
};

/// Messages per sealed page. A text rewrites the head with up to this many messages; a smaller
/// page means more stored values, which is what sled's cost grows with.
pub(super) const MESSAGES_PER_PAGE: usize = 25;

/// Moves the oldest messages of `conversation`'s open page into sealed pages while it holds
/// more than [`MESSAGES_PER_PAGE`] (the newest always stay in the head); returns the new pages.
pub(super) fn seal(conversation: &mut ConversationV2) -> Vec<MessagePageV1> {
    let mut sealed = Vec::new();
    while conversation.messages.len() > MESSAGES_PER_PAGE {
        let messages: Vec<MessageV1> = conversation.messages.drain(..MESSAGES_PER_PAGE).collect();
        sealed.push(MessagePageV1 {
            customer: conversation.customer.clone(),
            number: conversation.number.clone(),
            page: conversation.pages,
            messages,
        });
        conversation.pages += 1;
    }
    sealed
}

/// The stored conversation of `customer` and `number`, as one change writes it: the head
/// `next` (`None`: deleted), the pages `sealed` by this change, the deletion of the pages it no
/// longer has (of the `stored_pages` stored until now), and `outbox` entries. All of it goes in
/// one atomic write.
pub(super) fn writes(
    (customer, number): (&str, &str),
    stored_pages: u32,
    next: Option<&ConversationV2>,
    sealed: &[MessagePageV1],
    outbox: &[OutboxV1],
) -> Result<Vec<KeyedWrite>, StoreError> {
    let key = ConversationV1::key(customer, number);
    let mut writes = vec![match next {
        Some(conversation) => {
            let (key, value) = Store::encode(&ConversationRecord::V2(conversation.clone()))?;
            (key, Some(value))
        }
        None => (Store::key_of::<ConversationRecord>(&key), None),
    }];
    for page in sealed {
        let (key, value) = Store::encode(&MessagePageRecord::V1(page.clone()))?;
        writes.push((key, Some(value)));
    }
    let kept = next.map_or(0, |conversation| conversation.pages);
    for page in kept..stored_pages {
        let key = MessagePageV1::key(customer, number, page);
        writes.push((Store::key_of::<MessagePageRecord>(&key), None));
    }
    for entry in outbox {
        let (key, value) = Store::encode(&OutboxRecord::V1(entry.clone()))?;
        writes.push((key, Some(value)));
    }
    Ok(writes)
}

/// The bytes `writes` hands to the store: keys and values.
pub(super) fn size(writes: &[KeyedWrite]) -> u64 {
    writes.iter().map(|(key, value)| (key.len() + value.as_ref().map_or(0, Vec::len)) as u64).sum()
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn conversation(pages: u32, messages: usize) -> ConversationV2 {
        ConversationV2 {
            customer: "+1555".into(),
            number: "+1666".into(),
            flow: "main".into(),
            menu: None,
            failures: 0,
            language: String::new(),
            path: Vec::new(),
            memory: String::new(),
            task: None,
            pages,
            messages: (0..messages)
                .map(|n| MessageV1 {
                    at: n as i64,
                    author: "customer".into(),
                    body: n.to_string(),
                    outbox: None,
                    media: Vec::new(),
                })
                .collect(),
            stopped: false,
            answered: Vec::new(),
        }
    }

    /// A conversation with `pages` sealed pages (of `stored` stored) and `messages` in its open
    /// page, changed into `next` (`None`: deleted, else sealed first): its keys written (`+`)
    /// and deleted (`-`), and what the head holds afterwards.
    fn check(stored: u32, next: Option<(u32, usize)>, expected: Expect) {
        let mut next = next.map(|(pages, messages)| conversation(pages, messages));
        let sealed = next.as_mut().map(seal).unwrap_or_default();
        let writes = writes(("+1555", "+1666"), stored, next.as_ref(), &sealed, &[]).unwrap();
        let mut lines: Vec<String> = writes
            .iter()
            .map(|(key, value)| {
                format!("{}{}", if value.is_some() { "+" } else { "-" }, String::from_utf8_lossy(key))
            })
            .collect();
        for page in &sealed {
            let first = page.messages.first().map(|m| m.body.clone()).unwrap_or_default();
            lines.push(format!("page {}: {} messages from {first}", page.page, page.messages.len()));
        }
        if let Some(next) = &next {
            lines.push(format!("head: {} pages, {} open", next.pages, next.messages.len()));
        }
        expected.assert_eq(&lines.join("\n"));
    }

    #[test]
    fn the_open_page_is_sealed_once_full_and_dropped_pages_are_deleted() {
        // Below a page: only the head is written.
        check(
            0,
            Some((0, 25)),
            expect![[r#"
            +k:+1555|+1666
            head: 0 pages, 25 open"#]],
        );
        // One message over: the oldest 25 are sealed, the newest stays.
        check(
            0,
            Some((0, 26)),
            expect![[r#"
            +k:+1555|+1666
            +p:+1555|+1666|0000000000
            page 0: 25 messages from 0
            head: 1 pages, 1 open"#]],
        );
        // A first-format conversation of 60 messages is paged at its next write.
        check(
            0,
            Some((0, 60)),
            expect![[r#"
            +k:+1555|+1666
            +p:+1555|+1666|0000000000
            +p:+1555|+1666|0000000001
            page 0: 25 messages from 0
            page 1: 25 messages from 25
            head: 2 pages, 10 open"#]],
        );
        // Pages already sealed are not written again.
        check(
            3,
            Some((3, 26)),
            expect![[r#"
            +k:+1555|+1666
            +p:+1555|+1666|0000000003
            page 3: 25 messages from 0
            head: 4 pages, 1 open"#]],
        );
        // Started again (a new walk): the old pages go in the same write.
        check(
            2,
            Some((0, 1)),
            expect![[r#"
            +k:+1555|+1666
            -p:+1555|+1666|0000000000
            -p:+1555|+1666|0000000001
            head: 0 pages, 1 open"#]],
        );
        // Deleted (closed, or forgotten): the head and every page.
        check(
            2,
            None,
            expect![[r#"
            -k:+1555|+1666
            -p:+1555|+1666|0000000000
            -p:+1555|+1666|0000000001"#]],
        );
    }
}
