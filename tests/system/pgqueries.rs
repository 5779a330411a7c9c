//! The query set on both stores: the same script of writes and reads runs on a fresh SQLite
//! database and on a fresh PostgreSQL one (a real server started by the test), and every
//! step must answer the same on both.

use hearth::db::pg::log::{append, Appended, NewRow};
use hearth::db::queries::{self as q, CachedPage, NewUpload, PushSettings, SearchQuery};
use hearth::db::sql::{args, Conn, PgConn, Row as SqlRow, Sql};
use hearth::db::{
    ChangeKind, LinkPreview, MessageChange, NewAdmin, Notify, Page, RoomKind, SessionKind,
    SessionRow,
};
use hearth::model::{PushLevel, QuietHours};

use crate::engines::Postgres;

/// Stores a message and returns its id: the writer's insert on SQLite, the log's append on
/// PostgreSQL.
type Post<C> = dyn Fn(&C, (i64, i64), &str, Option<&str>) -> i64;

/// Runs a search: the ids found, and whether every excerpt marks a match.
type Find<C> = dyn Fn(&C, &SearchQuery) -> (Vec<i64>, bool);

/// One step's name and what it answered.
type Steps = Vec<(&'static str, String)>;

fn session(hash: u8, user_id: i64, kind: SessionKind, created_at: i64) -> SessionRow {
    SessionRow {
        token_hash: [hash; 32],
        user_id,
        kind,
        name: (kind == SessionKind::Bot).then(|| format!("bot{hash}")),
        created_at,
        expires_at: (kind == SessionKind::Cookie).then_some(created_at + 1_000_000),
    }
}

/// The script: accounts, sessions, rooms, messages and their lifecycle, and what hangs off
/// them. Returns every read's answer, in order.
fn script<C: Sql>(c: &C, post: &Post<C>, find: &Find<C>) -> Result<Steps, C::Error> {
    let mut out: Steps = Vec::new();
    let mut note = |step: &'static str, v: String| out.push((step, v));
    let t = 1_700_000_000_000i64;

    // Accounts.
    let ada = q::insert_user(c, "Ada", "ada", "h1", NewAdmin::IfFirst, t)?.unwrap();
    let bob = q::insert_user(c, "bob", "bob", "h2", NewAdmin::IfFirst, t + 1)?.unwrap();
    let cy = q::insert_user(c, "Cy", "cy", "h3", NewAdmin::No, t + 2)?.unwrap();
    note("login", format!("{:?}", q::user_for_login(c, "ada")?));
    q::set_password_hash(c, bob.id, "h2b")?;
    note("password", format!("{:?}", q::password_hash(c, bob.id)?));
    q::set_disabled(c, cy.id, true)?;
    note(
        "disabled login",
        format!("{:?}", q::user_for_login(c, "cy")?),
    );
    q::set_disabled(c, cy.id, false)?;
    q::set_admin(c, bob.id, true)?;
    note("users", format!("{:?}", q::list_users(c)?));
    note("summary", format!("{:?}", q::user_summary(c, "bob")?));
    note(
        "taken",
        format!(
            "{:?}",
            (q::username_taken(c, "cy")?, q::username_taken(c, "zed")?)
        ),
    );
    note("has admin", format!("{:?}", q::has_admin(c)?));
    note("prefix", format!("{:?}", q::users_by_prefix(c, "", 10)?));
    note("prefix b", format!("{:?}", q::users_by_prefix(c, "b", 10)?));
    note("by key", format!("{:?}", q::user_by_key(c, "cy")?));

    // Sessions.
    q::insert_session(c, &session(1, ada.id, SessionKind::Cookie, t))?;
    q::insert_session(c, &session(2, ada.id, SessionKind::Cookie, t + 5))?;
    q::insert_session(c, &session(3, ada.id, SessionKind::Bot, t + 6))?;
    q::insert_session(c, &session(4, bob.id, SessionKind::Cookie, t))?;
    note(
        "session",
        format!("{:?}", q::session_user(c, &[1; 32], t + 10)?),
    );
    note(
        "expired session",
        format!("{:?}", q::session_user(c, &[1; 32], t + 2_000_000)?),
    );
    // Three chunks of hashes, most of them unknown.
    let mut asked: Vec<[u8; 32]> = (0..300u16)
        .map(|i| {
            let mut h = [0xee; 32];
            h[..2].copy_from_slice(&i.to_le_bytes());
            h
        })
        .collect();
    asked[150] = [3; 32];
    asked.extend([[1; 32], [4; 32]]);
    let live = |at: i64| -> Result<Vec<u8>, C::Error> {
        let mut firsts: Vec<u8> = q::live_among(c, &asked, at)?.iter().map(|h| h[0]).collect();
        firsts.sort_unstable();
        Ok(firsts)
    };
    let (now, later) = (live(t + 10)?, live(t + 2_000_000)?);
    assert_eq!(
        (&now[..], &later[..]),
        (&[1, 3, 4][..], &[3][..]),
        "cookies expire, bots stay"
    );
    note("live among", format!("{now:?} {later:?}"));
    q::touch_session(c, &[2; 32], t + 50)?;
    note(
        "sessions of ada",
        format!("{:?}", q::sessions_of_user(c, ada.id, t + 60, 1_000)?),
    );
    note("bots", format!("{:?}", q::bot_session_count(c, ada.id)?));
    note(
        "others revoked",
        format!("{:?}", q::delete_other_sessions(c, ada.id, &[2; 32])?),
    );
    note(
        "by listing id",
        format!(
            "{:?}",
            q::delete_session_by_listing_id(c, ada.id, &"03".repeat(8))?
        ),
    );
    note(
        "expired removed",
        format!("{:?}", q::delete_expired_sessions(c, t + 2_000_000, 10)?),
    );
    q::bump_sessions_epoch(c)?;
    q::bump_sessions_epoch(c)?;
    note("epoch", format!("{:?}", q::sessions_epoch(c)?));
    q::set_registration_mode(c, q::RegistrationMode::Invite)?;
    note("registration", format!("{:?}", q::registration_mode(c)?));

    // Rooms.
    let lounge =
        q::insert_room(c, "lounge", "sofas", RoomKind::Room, true, Some(ada.id), t)?.unwrap();
    let attic = q::insert_room(c, "attic", "", RoomKind::Room, false, Some(bob.id), t)?.unwrap();
    let dm = q::insert_room(c, "dm:ada:bob", "", RoomKind::Dm, false, None, t)?.unwrap();
    note(
        "room taken",
        format!(
            "{:?}",
            q::insert_room(c, "lounge", "", RoomKind::Room, true, None, t)?
        ),
    );
    for (room, user) in [(lounge, ada.id), (lounge, bob.id), (attic, bob.id)] {
        q::add_member(c, room, user, t)?;
    }
    q::add_member(c, dm, ada.id, t)?;
    q::add_member(c, dm, bob.id, t)?;
    note(
        "add twice",
        format!("{:?}", q::add_member(c, lounge, ada.id, t)?),
    );
    q::add_member(c, attic, cy.id, t)?;
    note("leave", format!("{:?}", q::remove_member(c, attic, cy.id)?));
    note("members", format!("{:?}", q::room_members(c, lounge)?));
    note(
        "rename",
        format!(
            "{:?}",
            (
                q::update_room(c, attic, Some("lounge"), None)?,
                q::update_room(c, attic, Some("loft"), Some("up here"))?,
            )
        ),
    );
    q::set_notify(c, lounge, bob.id, Notify::Mentions)?;

    // Messages, with their positions.
    let general = 1;
    let m1 = post(c, (general, ada.id), "hello everyone", Some("n1"));
    let m2 = post(c, (lounge, ada.id), "hi @bob", None);
    let m3 = post(c, (lounge, bob.id), "hey ada", Some("n3"));
    let m4 = post(c, (dm, bob.id), "psst", None);
    q::insert_mention(c, bob.id, lounge, m2)?;
    q::insert_mention(c, bob.id, lounge, m2)?;
    note("mentioned", format!("{:?}", q::mentioned_by(c, m2)?));
    note("ids", format!("{:?}", [m1, m2, m3, m4]));
    note("head", format!("{:?}", q::head(c)?));
    note(
        "rooms of bob",
        format!("{:?}", q::rooms_for_user(c, bob.id)?),
    );
    note("public rooms", format!("{:?}", q::public_rooms(c, cy.id)?));
    note(
        "room by name",
        format!("{:?}", q::room_by_name(c, "loft", bob.id)?),
    );
    note("room by id", format!("{:?}", q::room_by_id(c, dm, ada.id)?));
    note("all rooms", format!("{:?}", q::all_rooms(c)?));
    note(
        "read marker",
        format!(
            "{:?}",
            (
                q::set_last_read(c, lounge, bob.id, m3 + 100)?,
                q::set_last_read(c, lounge, bob.id, 0)?,
                q::set_last_read(c, lounge, cy.id, m3)?,
            )
        ),
    );
    note(
        "reply target",
        format!("{:?}", q::reply_target(c, m2, lounge)?),
    );
    note("is public", format!("{:?}", q::room_is_public(c, lounge)?));
    note(
        "by nonce",
        format!("{:?}", q::message_by_nonce(c, bob.id, "n3")?),
    );

    // Edits, reactions, deletions: each change at its own position.
    let seq = q::next_position(c)?;
    q::set_message_body(c, m3, "hey Ada!", t + 100)?;
    let edit = MessageChange {
        seq,
        id: m3,
        room_id: lounge,
        room: "lounge".into(),
        kind: ChangeKind::Edited {
            body: "hey Ada!".into(),
            edited_ms: t + 100,
        },
    };
    q::insert_change(c, &edit, Some(bob.id), t + 100)?;
    for (user, name, emoji) in [
        (ada.id, "Ada", "👍"),
        (bob.id, "bob", "🎉"),
        (bob.id, "bob", "👍"),
    ] {
        let seq = q::next_position(c)?;
        q::set_reaction(c, (m3, lounge), (user, emoji), (true, seq), t + 200)?;
        let change = MessageChange {
            seq,
            id: m3,
            room_id: lounge,
            room: "lounge".into(),
            kind: ChangeKind::Reaction {
                user: name.into(),
                emoji: emoji.into(),
                on: true,
            },
        };
        q::insert_change(c, &change, Some(user), t + 200)?;
    }
    note(
        "reactions",
        format!(
            "{:?}",
            (
                q::has_reaction(c, m3, ada.id, "👍")?,
                q::emoji_on_message(c, m3, "🎉")?,
                q::emoji_on_message(c, m3, "🙂")?,
                q::last_reaction_change(c, m3, bob.id, "👍")?,
            )
        ),
    );
    let (msg2, _) = q::message_by_id(c, m2)?.unwrap();
    note(
        "delete",
        format!(
            "{:?}",
            q::delete_message(c, &msg2, (Some(ada.id), "Ada"), t + 300)?
        ),
    );
    note("last edit", format!("{:?}", q::last_change(c, m3, "edit")?));
    note("message by id", format!("{:?}", q::message_by_id(c, m3)?));
    note(
        "before",
        format!("{:?}", q::messages_before(c, lounge, None, 10)?),
    );
    // Pages of history, written out as the server sends them.
    let lounge_key = q::room_key_by_id(c, lounge, bob.id)?.unwrap();
    for (name, page, limit) in [
        ("page before", Page::Before(None), 10),
        ("page before an id", Page::Before(Some(m3)), 2),
        ("page after", Page::After(m2), 1),
        ("page around", Page::Around(m3), 3),
        // Nothing before it: a limit of 0 on one side.
        ("page around, 1", Page::Around(m3), 1),
    ] {
        let rows = q::room_page(c, &lounge_key, page, limit)?;
        let body = String::from_utf8(hearth::protocol::history_body_of(&rows)).unwrap();
        note(name, body);
    }
    note(
        "replay",
        format!("{:?}", q::replay_for_user(c, bob.id, 0, 100)?),
    );
    note(
        "replay page",
        format!("{:?}", q::replay_for_user(c, bob.id, m3, 2)?),
    );
    note(
        "live ids",
        format!("{:?}", q::live_message_ids_by(c, ada.id)?),
    );

    // Search: the same hits in the same order (excerpts are each engine's own).
    let query = |raw: &str, user_id: i64| SearchQuery {
        fts: hearth::domain::fts_query(raw).unwrap(),
        user_id,
        room_id: None,
        author_key: None,
        before: None,
        offset: 0,
        limit: 10,
        by_relevance: false,
    };
    for (raw, user) in [
        ("hey", bob.id),
        ("HELLO", bob.id),
        ("psst", cy.id),
        ("psst", ada.id),
        ("\"hey ada\"", bob.id),
        ("\"ada hey\"", bob.id),
        ("bob", ada.id),
        ("hey nothing", bob.id),
    ] {
        note("search", format!("{raw} {:?}", find(c, &query(raw, user))));
    }
    let mut filtered = query("hello", bob.id);
    filtered.room_id = Some(lounge);
    note("search in room", format!("{:?}", find(c, &filtered)));
    filtered.room_id = None;
    filtered.author_key = Some("ada".into());
    note("search by author", format!("{:?}", find(c, &filtered)));
    filtered.author_key = Some("zed".into());
    note("search by nobody", format!("{:?}", find(c, &filtered)));
    let mut ranked = query("hey", bob.id);
    ranked.by_relevance = true;
    note("search ranked", format!("{:?}", find(c, &ranked)));
    // Words as SQLite's index splits and folds them, on both stores: an address, a hyphen and
    // a decimal point separate words, accents fold, `ß` stays; a reply stored alone and an
    // edit are found by their new words only.
    let tricky = post(
        c,
        (lounge, bob.id),
        "mail bob@example.com, a well-known trick: pi is 3.14 — Ça va, Straße?",
        None,
    );
    let reply = q::insert_message(
        c,
        (lounge, ada.id),
        "Über naïve café",
        (None, Some(tricky)),
        t,
    )?
    .unwrap();
    let words = [
        "example",
        "bob@example.com",
        "well-known",
        "known",
        "3.14",
        "14",
        "ca va",
        "\"va ca\"",
        "strasse",
        "STRASSE",
        "straße",
        "uber cafe",
        "NAIVE",
    ];
    for raw in words {
        note(
            "search words",
            format!("{raw} {:?}", find(c, &query(raw, bob.id))),
        );
    }
    q::set_message_body(c, reply, "changed words", t + 400)?;
    for raw in ["cafe", "changed"] {
        note(
            "search edited",
            format!("{raw} {:?}", find(c, &query(raw, bob.id))),
        );
    }
    note("head after changes", format!("{:?}", q::head(c)?));
    note("admin", format!("{:?}", q::user_is_admin(c, bob.id)?));

    // Invitations.
    let inv = q::insert_invite(c, &[7; 32], Some(ada.id), t, t + 1000, 2)?;
    q::insert_invite(c, &[8; 32], None, t, t + 1000, 1)?;
    note(
        "invite use",
        format!(
            "{:?}",
            (
                q::usable_invite(c, &[7; 32], (t, true))?,
                q::usable_invite(c, &[7; 32], (t, false))?,
                q::usable_invite(c, &[8; 32], (t, false))?,
                q::use_invite(c, inv, t)?,
                q::use_invite(c, inv, t)?,
                q::use_invite(c, inv, t)?,
                q::revoke_own_invite(c, inv, bob.id)?,
                q::revoke_invite(c, inv)?,
            )
        ),
    );
    note("invites", format!("{:?}", q::list_invites(c)?));
    note(
        "invites by",
        format!("{:?}", q::list_invites_by(c, ada.id)?),
    );

    // Profiles.
    q::update_profile(c, ada.id, Some("Ada L."), None)?;
    q::update_profile(c, ada.id, None, Some("counting"))?;
    q::set_avatar(c, bob.id, Some(("abc", "image/png")))?;
    note("profile", format!("{:?}", q::profile_of(c, ada.id)?));
    note(
        "profile by key",
        format!("{:?}", q::profile_by_key(c, "bob")?),
    );
    note("profiles", format!("{:?}", q::set_profiles(c)?));

    // Uploads and previews.
    let upload = NewUpload {
        id: "u1".into(),
        user_id: bob.id,
        name: "cat.png".into(),
        mime: "image/png".into(),
        size: 1234,
        sha256: "f1".into(),
        dimensions: Some((640, 480)),
        thumbnail: Some(("t1".into(), "image/webp".into())),
    };
    q::insert_upload(c, &upload, t)?;
    q::insert_upload(
        c,
        &NewUpload {
            id: "u2".into(),
            size: 10,
            sha256: "f2".into(),
            dimensions: None,
            thumbnail: None,
            ..upload.clone()
        },
        t,
    )?;
    note(
        "upload bytes",
        format!("{:?}", q::upload_bytes_of(c, bob.id)?),
    );
    note(
        "attach",
        format!(
            "{:?}",
            (
                q::attach_uploads(c, m3, ada.id, &["u1".into()])?,
                q::attach_uploads(c, m3, bob.id, &["u2".into(), "u1".into()])?,
            )
        ),
    );
    note("upload", format!("{:?}", q::upload_by_id(c, "u1")?));
    note(
        "in use",
        format!("{:?}", (q::file_in_use(c, "t1")?, q::file_in_use(c, "zz")?)),
    );
    let page = CachedPage {
        ok: true,
        title: "A page".into(),
        description: "about".into(),
        site_name: "site".into(),
        image: Some(("p1".into(), "image/jpeg".into())),
    };
    q::cache_page(c, "https://example.test/", &page, t)?;
    q::cache_page(c, "https://example.test/", &page, t + 5)?;
    note(
        "cached page",
        format!(
            "{:?}",
            (
                q::cached_page(c, "https://example.test/", t + 1)?,
                q::cached_page(c, "https://example.test/", t + 10)?,
            )
        ),
    );
    let preview = LinkPreview {
        url: "https://example.test/".into(),
        title: "A page".into(),
        description: "about".into(),
        site_name: "site".into(),
        has_image: true,
    };
    q::insert_message_preview(c, m3, &preview, Some(("p1", "image/jpeg")))?;
    q::refuse_message_preview(c, m4)?;
    note(
        "previews",
        format!(
            "{:?}",
            (
                q::has_preview_row(c, m4)?,
                q::preview_image(c, m3)?,
                q::message_by_id(c, m3)?,
            )
        ),
    );
    note(
        "preview removed",
        format!(
            "{:?}",
            (
                q::remove_message_preview(c, m3)?,
                q::remove_message_preview(c, m3)?,
            )
        ),
    );
    note(
        "forgotten pages",
        format!("{:?}", q::forget_old_pages(c, t + 6)?),
    );
    note(
        "unsent",
        format!("{:?}", q::delete_unsent_upload(c, "u1", bob.id)?),
    );

    // Web Push, from sessions that are still open.
    q::insert_session(c, &session(4, bob.id, SessionKind::Cookie, t + 2_000_000))?;
    q::insert_session(c, &session(2, ada.id, SessionKind::Cookie, t + 2_000_000))?;
    let key = q::server_key(c, "vapid", || vec![1, 2, 3])?;
    let again = q::server_key(c, "vapid", || vec![9])?;
    note("server key", format!("{:?}", (key, again)));
    q::upsert_subscription(
        c,
        "https://push.test/a",
        (bob.id, &[4; 32]),
        (&[5; 65], &[6; 16]),
        t,
    )?;
    q::upsert_subscription(
        c,
        "https://push.test/b",
        (ada.id, &[2; 32]),
        (&[5; 65], &[6; 16]),
        t,
    )?;
    let settings = PushSettings {
        level: Some(PushLevel::All),
        quiet: Some(Some(QuietHours {
            start: 1320,
            end: 420,
        })),
        utc_offset: Some(-300),
    };
    note(
        "push update",
        format!(
            "{:?}",
            q::update_subscription(c, "https://push.test/b", ada.id, settings)?
        ),
    );
    q::subscription_ok(c, "https://push.test/a", t + 7)?;
    note(
        "push of bob",
        format!("{:?}", q::subscriptions_of_user(c, bob.id)?),
    );
    note(
        "push targets",
        format!(
            "{:?}",
            q::push_targets(c, lounge, "bob", (&[ada.id], false))?
        ),
    );
    note(
        "push dm targets",
        format!("{:?}", q::push_targets(c, dm, "ada", (&[], false))?),
    );
    note(
        "push targets of an edit's mention",
        format!("{:?}", q::push_targets(c, dm, "ada", (&[bob.id], true))?),
    );
    // The endpoint moves to another user: its settings start over.
    q::upsert_subscription(
        c,
        "https://push.test/b",
        (bob.id, &[4; 32]),
        (&[7; 65], &[8; 16]),
        t + 9,
    )?;
    note(
        "push moved",
        format!("{:?}", q::subscription(c, "https://push.test/b", bob.id)?),
    );
    note(
        "push delete",
        format!(
            "{:?}",
            (
                q::delete_subscription(c, "https://push.test/b", Some(ada.id))?,
                q::delete_subscription(c, "https://push.test/b", None)?,
                q::subscription_count(c)?,
            )
        ),
    );

    // Hooks and webhooks.
    let hook_user = q::insert_hook(
        c,
        ("h1", &[9; 32]),
        ("deploys", "deploys"),
        lounge,
        ada.id,
        t,
    )?;
    note("hook user", format!("{:?}", hook_user));
    note(
        "hook taken",
        format!(
            "{:?}",
            q::insert_hook(
                c,
                ("h2", &[9; 32]),
                ("Deploys", "deploys"),
                lounge,
                ada.id,
                t
            )?
        ),
    );
    q::touch_hook(c, "h1", t + 3)?;
    note(
        "hooks",
        format!("{:?}", (q::hooks_of(c, None)?, q::hooks_of(c, Some(dm))?)),
    );
    note("hook", format!("{:?}", q::hook_by_id(c, "h1")?));
    let wh = q::insert_webhook(c, lounge, "http://127.0.0.1:9/", "s3cret", ada.id, t)?;
    q::queue_webhook_deliveries(c, lounge, m3, t)?;
    q::queue_webhook_deliveries(c, lounge, m3 + 1, t)?;
    note("due", format!("{:?}", q::due_deliveries(c, t, 10)?));
    q::delivery_failed(c, (wh, m3), (Some(500), "server error"), Some(t + 60), t)?;
    note("next due", format!("{:?}", q::next_delivery_at(c)?));
    q::delivery_done(c, wh, m3, 200, t + 61)?;
    // Its maker leaves the room: nothing of the webhook is due, nor next, the hook made by
    // the same member may not post, and the sweep drops what the webhook had waiting.
    q::remove_member(c, lounge, ada.id)?;
    let away = (
        q::due_deliveries(c, t + 100, 10)?,
        q::next_delivery_at(c)?,
        q::hook_by_id(c, "h1")?.map(|h| h.active),
        q::drop_paused_deliveries(c)?,
    );
    assert_eq!(
        (away.0.len(), away.1, away.2, away.3),
        (0, None, Some(false), 1),
        "nothing due, next or allowed while the maker is away; one delivery dropped"
    );
    note("maker away", format!("{away:?}"));
    q::add_member(c, lounge, ada.id, t)?;
    note(
        "maker back",
        format!("{:?}", q::hook_by_id(c, "h1")?.map(|h| h.active)),
    );
    note(
        "webhooks",
        format!("{:?}", q::webhooks_of(c, Some(lounge))?),
    );
    note("webhook", format!("{:?}", q::webhook_by_id(c, wh)?));
    note("hook counts", format!("{:?}", q::hook_counts(c, lounge)?));
    note(
        "hook gone",
        format!(
            "{:?}",
            (
                q::delete_hook(c, "h1")?,
                q::is_hook_account(c, hook_user.unwrap_or(0))?,
                q::delete_webhook(c, wh)?,
                q::webhook_count(c)?,
            )
        ),
    );
    // The setup code is spent by the administrator it makes: with no administrator left and
    // the code gone, the next registration through the setup link stays a member.
    let admins: Vec<i64> = q::list_users(c)?
        .iter()
        .filter(|u| u.is_admin)
        .map(|u| u.id)
        .collect();
    for id in &admins {
        q::set_admin(c, *id, false)?;
    }
    q::server_key(c, q::SETUP_CODE_KEY, || b"code".to_vec())?;
    let eve = q::insert_user(c, "Eve", "eve", "h", NewAdmin::IfNoAdmin, t + 7)?.unwrap();
    let eve_admin = q::user_summary(c, "eve")?.is_some_and(|u| u.is_admin);
    q::set_admin(c, eve.id, false)?;
    q::insert_user(c, "Fay", "fay", "h", NewAdmin::IfNoAdmin, t + 8)?.unwrap();
    let fay_admin = q::user_summary(c, "fay")?.is_some_and(|u| u.is_admin);
    assert_eq!(
        (eve_admin, fay_admin),
        (true, false),
        "the code made one administrator"
    );
    note("setup code spent", format!("{eve_admin} {fay_admin}"));
    for id in &admins {
        q::set_admin(c, *id, true)?;
    }
    // Refused inserts come last: PostgreSQL's identities skip the value a refused insert drew
    // (SQLite's do not), which would shift every later id.
    note(
        "duplicate user",
        format!(
            "{:?}",
            q::insert_user(c, "ADA", "ada", "h", NewAdmin::No, t)?
        ),
    );
    note("totals", format!("{:?}", q::totals(c)?));
    Ok(out)
}

/// The ids of `hits`, and whether each excerpt marks a match (`\x02…\x03`).
fn found(hits: &[hearth::db::SearchHit]) -> (Vec<i64>, bool) {
    let ids = hits.iter().map(|h| h.msg.id).collect();
    let marked = hits
        .iter()
        .all(|h| h.snippet.contains('\u{2}') && h.snippet.contains('\u{3}'));
    (ids, marked)
}

/// A fresh PostgreSQL database at the newest schema, with `general` (made by its migrations,
/// as a fresh SQLite database has it).
fn fresh_pg(pg: &Postgres, name: &str) -> PgConn {
    pg.create_database(name);
    let mut client = pg.client(name);
    hearth::db::pg::schema::migrate(&mut client).unwrap();
    PgConn::new(client)
}

/// A fresh SQLite database at the newest schema.
fn fresh_sqlite(dir: &std::path::Path, name: &str) -> rusqlite::Connection {
    let mut lite = rusqlite::Connection::open(dir.join(name)).unwrap();
    hearth::db::schema::migrate(&mut lite).unwrap().unwrap();
    lite.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    lite
}

const NOW: i64 = 1_700_000_000_000;

fn post_pg(c: &PgConn, (room_id, user_id): (i64, i64), body: &str, nonce: Option<&str>) -> i64 {
    let row = NewRow {
        room_id,
        user_id,
        body: body.into(),
        nonce: nonce.map(str::to_string),
    };
    match append(&mut c.client(), &[row], NOW).unwrap()[..] {
        [Appended::Stored(id)] => id,
        ref other => panic!("not stored: {other:?}"),
    }
}

fn post_sqlite(
    c: &rusqlite::Connection,
    room_user: (i64, i64),
    body: &str,
    nonce: Option<&str>,
) -> i64 {
    q::insert_message(c, room_user, body, (nonce, None), NOW)
        .unwrap()
        .expect("a member's message is stored")
}

fn find_pg(c: &PgConn, query: &SearchQuery) -> (Vec<i64>, bool) {
    found(&q::search_pg(c, query).unwrap())
}

fn find_sqlite(c: &rusqlite::Connection, query: &SearchQuery) -> (Vec<i64>, bool) {
    // The search index is written after commits, by the writer; here, before each search.
    let last = q::last_message_id(c).unwrap();
    q::index_messages_through(c, last).unwrap();
    found(&q::search(c, query).unwrap())
}

#[test]
fn the_shared_queries_answer_alike_on_sqlite_and_postgresql() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let on_pg = script(&fresh_pg(&pg, "queries"), &post_pg, &find_pg).unwrap();
    let on_sqlite = script(
        &fresh_sqlite(dir.path(), "chat.db"),
        &post_sqlite,
        &find_sqlite,
    )
    .unwrap();
    // The same script through the connection the store's threads hold, either store behind it.
    let post_any = |c: &Conn, room_user, body: &str, nonce: Option<&str>| match c {
        Conn::Lite(c) => post_sqlite(c, room_user, body, nonce),
        Conn::Pg(c) => post_pg(c, room_user, body, nonce),
    };
    let find_any = |c: &Conn, query: &SearchQuery| match c {
        Conn::Lite(c) => find_sqlite(c, query),
        Conn::Pg(c) => find_pg(c, query),
    };
    let any_pg = Conn::Pg(fresh_pg(&pg, "queries_any"));
    let any_sqlite = Conn::Lite(fresh_sqlite(dir.path(), "any.db"));
    let through_pg = script(&any_pg, &post_any, &find_any).unwrap();
    let through_sqlite = script(&any_sqlite, &post_any, &find_any).unwrap();

    let searches_with_hits = on_pg
        .iter()
        .filter(|(step, v)| step.starts_with("search") && !v.contains("[]"))
        .count();
    assert_eq!(
        searches_with_hits, 17,
        "the searches find what they should: {on_pg:?}"
    );
    for (name, other) in [
        ("PostgreSQL", &on_pg),
        ("SQLite through Conn", &through_sqlite),
        ("PostgreSQL through Conn", &through_pg),
    ] {
        assert_eq!(on_sqlite.len(), other.len(), "{name}");
        for ((step, lite), (_, theirs)) in on_sqlite.iter().zip(other) {
            assert_eq!(
                lite, theirs,
                "step {step:?}: SQLite (left) and {name} (right) differ"
            );
        }
    }
}

/// The hub's events age on PostgreSQL's clock, which every node shares: a node whose own
/// clock is minutes off neither stamps events in the past nor deletes fresh ones.
#[test]
fn hub_events_are_stamped_and_pruned_on_postgresqls_clock() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let c = fresh_pg(&pg, "events");
    q::insert_hub_event(&c, 7, "[]").unwrap();
    let skew: i64 = c
        .row(
            "SELECT abs(ts - (extract(epoch FROM now()) * 1000)::bigint) FROM hub_events",
            args![],
            |r| SqlRow::get(r, 0),
        )
        .unwrap()
        .unwrap();
    assert!(skew < 60_000, "stamped {skew} ms from PostgreSQL's clock");
    assert_eq!(
        q::prune_hub_events(&c, 600_000).unwrap(),
        0,
        "a fresh event stays"
    );
    assert_eq!(
        q::prune_hub_events(&c, -60_000).unwrap(),
        1,
        "older than a minute ahead"
    );
    let (_, pruned) = q::log_head_and_pruned(&c).unwrap();
    assert_eq!(pruned, 7, "the mark of deleted events");
}
