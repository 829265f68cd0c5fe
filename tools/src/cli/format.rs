//! zkCli's texts, to the character: Stat blocks with Java's `Date.toString`, watch events, ACL
//! lines, `KeeperException` messages and the client's path checks (`PathUtils`). Scripts parse
//! these, so they follow ZooKeeper 3.8's code rather than taste.

use engine::{Acl, Stat};

/// Error codes (`KeeperException.Code`) the shell names.
pub mod code {
    /// No connection to send on, or it went before the reply came.
    pub const CONNECTION_LOSS: i32 = -4;
    /// The node does not exist.
    pub const NO_NODE: i32 = -101;
    /// An empty or malformed ACL.
    pub const INVALID_ACL: i32 = -114;
    /// removewatches found no such watch.
    pub const NO_WATCHER: i32 = -121;
}

/// `KeeperException.getCodeMessage`: the text after `KeeperErrorCode = `.
fn code_message(code: i32) -> String {
    let text = match code {
        0 => "ok",
        -1 => "SystemError",
        -2 => "RuntimeInconsistency",
        -3 => "DataInconsistency",
        -4 => "ConnectionLoss",
        -5 => "MarshallingError",
        -6 => "Unimplemented",
        -7 => "OperationTimeout",
        -8 => "BadArguments",
        -12 => "Unknown error UNKNOWNSESSION",
        -13 => "NewConfigNoQuorum",
        -14 => "ReconfigInProgress",
        -100 => "APIError",
        -101 => "NoNode",
        -102 => "NoAuth",
        -103 => "BadVersion",
        -108 => "NoChildrenForEphemerals",
        -110 => "NodeExists",
        -111 => "Directory not empty",
        -112 => "Session expired",
        -113 => "Invalid callback",
        -114 => "InvalidACL",
        -115 => "AuthFailed",
        -118 => "Session moved",
        -119 => "Not a read-only call",
        -120 => "Ephemeral node on local session",
        -121 => "No such watcher",
        -122 => "Unknown error REQUESTTIMEOUT",
        -123 => "Reconfig is disabled",
        -124 => "Session closed because client failed to authenticate",
        -125 => "Quota has exceeded",
        -127 => "Op throttled due to high load",
        other => return format!("Unknown error {other}"),
    };
    text.to_string()
}

/// `KeeperException.getMessage`: `KeeperErrorCode = NoNode for /x`.
pub fn keeper_message(code: i32, path: Option<&str>) -> String {
    match path {
        Some(p) if !p.is_empty() => format!("KeeperErrorCode = {} for {p}", code_message(code)),
        _ => format!("KeeperErrorCode = {}", code_message(code)),
    }
}

/// `CliWrapperException.getMessage`: the friendlier texts zkCli prints for common codes.
pub fn wrapper_message(code: i32, path: Option<&str>) -> String {
    let p = path.unwrap_or("null");
    match code {
        -101 => format!("Node does not exist: {p}"),
        -108 => format!("Ephemerals cannot have children: {p}"),
        -110 => format!("Node already exists: {p}"),
        -111 => format!("Node not empty: {p}"),
        -119 => format!("Not a read-only call: {p}"),
        -114 => format!("Acl is not valid : {p}"),
        -102 => format!("Insufficient permission : {p}"),
        -8 => format!("Arguments are not valid : {p}"),
        -103 => format!("version No is not valid : {p}"),
        -14 => "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)".to_string(),
        -13 => "No quorum of new config is connected and up-to-date with the leader of last commmitted config - try \
                invoking reconfiguration after new servers are connected and synced"
            .to_string(),
        -125 => format!("Quota has exceeded : {p}"),
        _ => keeper_message(code, path),
    }
}

/// `Watcher.Event.EventType` names.
pub fn event_type_name(t: i32) -> String {
    match t {
        -1 => "None".into(),
        1 => "NodeCreated".into(),
        2 => "NodeDeleted".into(),
        3 => "NodeDataChanged".into(),
        4 => "NodeChildrenChanged".into(),
        5 => "DataWatchRemoved".into(),
        6 => "ChildWatchRemoved".into(),
        7 => "PersistentWatchRemoved".into(),
        other => format!("Unknown{other}"),
    }
}

/// `Watcher.Event.KeeperState` names.
pub fn keeper_state_name(s: i32) -> String {
    match s {
        -1 => "Unknown".into(),
        0 => "Disconnected".into(),
        1 => "NoSyncConnected".into(),
        3 => "SyncConnected".into(),
        4 => "AuthFailed".into(),
        5 => "ConnectedReadOnly".into(),
        6 => "SaslAuthenticated".into(),
        -112 => "Expired".into(),
        7 => "Closed".into(),
        other => format!("Unknown{other}"),
    }
}

/// Keeper states the shell raises itself.
pub mod state {
    /// The connection went; the client is trying others.
    pub const DISCONNECTED: i32 = 0;
    /// Connected, and the state of every event the server sends.
    pub const SYNC_CONNECTED: i32 = 3;
    /// The server refused the credentials of an `addauth`.
    pub const AUTH_FAILED: i32 = 4;
    /// The server no longer knows the session.
    pub const EXPIRED: i32 = -112;
    /// The shell closed the session.
    pub const CLOSED: i32 = 7;
}

/// Event types the client raises itself when it removes watches.
pub mod removed {
    /// A data or exists watch was removed.
    pub const DATA: i32 = 5;
    /// A child watch was removed.
    pub const CHILD: i32 = 6;
    /// A persistent (or persistent recursive) watch was removed.
    pub const PERSISTENT: i32 = 7;
}

/// What `ZooKeeperMain.MyWatcher` prints for an event: `printMessage("WATCHER::")` and
/// `printMessage(event.toString())`, each a blank line and the text.
pub fn watcher_block(state: i32, event_type: i32, path: Option<&str>) -> String {
    format!(
        "\nWATCHER::\n\nWatchedEvent state:{} type:{} path:{}\n",
        keeper_state_name(state),
        event_type_name(event_type),
        path.unwrap_or("null")
    )
}

/// `StatPrinter.print`.
pub fn stat_block(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\ncversion = {}\ndataVersion = {}\n\
         aclVersion = {}\nephemeralOwner = 0x{:x}\ndataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

/// `new Date(ms).toString()`: `Thu Jan 01 00:00:00 UTC 1970` in the local time zone, with the
/// zone's abbreviation as the C library knows it (the same as Java's for the usual zones).
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    extern "C" {
        fn tzset();
    }
    let secs: libc::time_t = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills; tzset (POSIX) reads TZ, as Java does.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        tzset();
        !libc::localtime_r(&secs, &mut tm).is_null()
    };
    if !ok {
        return ms.to_string();
    }
    let zone = if tm.tm_zone.is_null() {
        String::from("UTC")
    } else {
        // SAFETY: localtime_r points tm_zone at a NUL-terminated static abbreviation.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }.to_string_lossy().into_owned()
    };
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} {} {}",
        DAYS.get(tm.tm_wday as usize).unwrap_or(&"???"),
        MONTHS.get(tm.tm_mon as usize).unwrap_or(&"???"),
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        zone,
        tm.tm_year + 1900
    )
}

/// `ZKUtil.getPermString`: the letters of `perms` in the order c, d, r, w, a.
pub fn perm_string(perms: i32) -> String {
    [(4, 'c'), (8, 'd'), (1, 'r'), (2, 'w'), (16, 'a')]
        .iter()
        .filter(|(bit, _)| perms & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// jute's `ToStringOutputArchive.escapeString`, which `Id.toString()` applies to both parts.
fn jute_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// What getAcl prints for one entry: `Id.toString()` (which ends in a newline) then the perms.
pub fn acl_lines(acl: &Acl) -> String {
    format!("{},{}\n: {}\n", jute_string(&acl.id.scheme), jute_string(&acl.id.id), perm_string(acl.perms))
}

/// Java's `String.split` on one character: trailing empty pieces dropped, and a string
/// without the separator is itself the only piece (so "" gives [""]).
pub fn java_split(s: &str, sep: char) -> Vec<&str> {
    if !s.contains(sep) {
        return vec![s];
    }
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

/// `AclParser.parse`: `scheme:id:perm[,...]`; bad entries are reported on stderr and skipped,
/// as zkCli does, so an all-bad list is empty and the call fails with InvalidACL.
pub fn parse_acl(text: &str, warn: &mut dyn FnMut(String)) -> Vec<Acl> {
    let mut out = Vec::new();
    for a in java_split(text, ',') {
        let (first, last) = match (a.find(':'), a.rfind(':')) {
            (Some(f), Some(l)) if f != l => (f, l),
            _ => {
                warn(format!("{a} does not have the form scheme:id:perm"));
                continue;
            }
        };
        let mut perms = 0;
        for c in a[last + 1..].chars() {
            match c {
                'r' => perms |= 1,
                'w' => perms |= 2,
                'c' => perms |= 4,
                'd' => perms |= 8,
                'a' => perms |= 16,
                other => warn(format!("Unknown perm type: {other}")),
            }
        }
        out.push(Acl { perms, id: engine::acl::Id::new(&a[..first], &a[first + 1..last]) });
    }
    out
}

/// `PathUtils.validatePath`: the client refuses these before sending, with these texts.
/// Positions count UTF-16 units, as Java's do.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("Path must not end with / character".into());
    }
    let chars: Vec<u16> = path.encode_utf16().collect();
    let dot = u16::from(b'.');
    let slash = u16::from(b'/');
    let mut reason = None;
    let mut lastc = slash;
    for i in 1..chars.len() {
        let c = chars[i];
        let next_is_end_or_slash = i + 1 == chars.len() || chars[i + 1] == slash;
        if c == 0 {
            reason = Some(format!("null character not allowed @{i}"));
        } else if c == slash && lastc == slash {
            reason = Some(format!("empty node name specified @{i}"));
        } else if c == dot && lastc == dot {
            if chars[i - 2] == slash && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if c == dot {
            if chars[i - 1] == slash && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if (0x0001..=0x001f).contains(&c)
            || (0x007f..=0x009f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || (0xfff0..=0xffff).contains(&c)
        {
            reason = Some(format!("invalid character @{i}"));
        }
        if reason.is_some() {
            break;
        }
        lastc = c;
    }
    match reason {
        Some(r) => Err(format!("Invalid path string \"{path}\" caused by {r}")),
        None => Ok(()),
    }
}

/// `PathUtils.validatePath(path, isSequential)`: a sequential path may end in `/`.
pub fn validate_create_path(path: &str, sequential: bool) -> Result<(), String> {
    if sequential {
        // Java checks `path + "1"`, so the messages name that string.
        validate_path(&format!("{path}1"))
    } else {
        validate_path(path)
    }
}

/// Java's `NumberFormatException` text for `Integer.parseInt` / `Long.parseLong` in radix 10.
pub fn number_format(s: &str) -> String {
    format!("java.lang.NumberFormatException: For input string: \"{s}\"")
}

/// `Integer.parseInt`: an optional sign and decimal digits, in range.
pub fn parse_java_int(s: &str) -> Result<i32, String> {
    parse_java_long(s).and_then(|v| i32::try_from(v).map_err(|_| number_format(s)))
}

/// `Long.parseLong`: an optional sign and decimal digits, in range.
pub fn parse_java_long(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(number_format(s));
    }
    s.parse::<i64>().map_err(|_| number_format(s))
}

/// `Integer.decode`: decimal, `0x`/`#` hex or leading-zero octal, with an optional sign.
pub fn parse_java_decode(s: &str) -> Result<i32, String> {
    let err = || {
        if s.is_empty() {
            "java.lang.NumberFormatException: Zero length string".to_string()
        } else {
            number_format(s)
        }
    };
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        (16, h)
    } else if let Some(h) = body.strip_prefix('#') {
        (16, h)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(err());
    }
    let magnitude = i64::from_str_radix(digits, radix).map_err(|_| err())?;
    let value = if neg { -magnitude } else { magnitude };
    i32::try_from(value).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_refused_with_zookeepers_texts() {
        assert_eq!(validate_path("x"), Err("Path must start with / character".into()));
        assert_eq!(validate_path("/a/"), Err("Path must not end with / character".into()));
        assert_eq!(
            validate_path("/a//b"),
            Err("Invalid path string \"/a//b\" caused by empty node name specified @3".into())
        );
        assert_eq!(
            validate_path("/zz/."),
            Err("Invalid path string \"/zz/.\" caused by relative paths not allowed @4".into())
        );
        assert_eq!(
            validate_path("/zz/.."),
            Err("Invalid path string \"/zz/..\" caused by relative paths not allowed @5".into())
        );
        assert_eq!(validate_path("/zz/.x"), Ok(()));
        assert_eq!(
            validate_path("/a\u{1}"),
            Err("Invalid path string \"/a\u{1}\" caused by invalid character @2".into())
        );
        assert_eq!(validate_create_path("/a/", true), Ok(()));
        assert_eq!(validate_path("/"), Ok(()));
    }

    #[test]
    fn stat_lines_follow_stat_printer() {
        let s = Stat { czxid: 0x1f, ephemeral_owner: -1, num_children: 2, ..Stat::default() };
        let text = stat_block(&s);
        assert!(text.starts_with("cZxid = 0x1f\nctime = "));
        assert!(text.contains("ephemeralOwner = 0xffffffffffffffff\n"));
        assert!(text.ends_with("numChildren = 2\n"));
    }

    #[test]
    fn acl_lines_follow_id_to_string() {
        let acl = Acl { perms: 31, id: engine::acl::Id::new("world", "anyone") };
        assert_eq!(acl_lines(&acl), "'world,'anyone\n: cdrwa\n");
        let mut warnings = Vec::new();
        let parsed = parse_acl("digest:u:p:rx,bad", &mut |w| warnings.push(w));
        assert_eq!(parsed, vec![Acl { perms: 1, id: engine::acl::Id::new("digest", "u:p") }]);
        assert_eq!(warnings, vec!["Unknown perm type: x", "bad does not have the form scheme:id:perm"]);
    }

    #[test]
    fn numbers_parse_as_java_does() {
        assert_eq!(parse_java_int("+5"), Ok(5));
        assert_eq!(parse_java_int(" 5"), Err(number_format(" 5")));
        assert_eq!(parse_java_int("3000000000"), Err(number_format("3000000000")));
        assert_eq!(parse_java_decode("0x10"), Ok(16));
        assert_eq!(parse_java_decode("010"), Ok(8));
        assert_eq!(parse_java_decode("-3"), Ok(-3));
    }

    #[test]
    fn java_split_drops_trailing_empties() {
        assert_eq!(java_split("", ','), vec![""]);
        assert_eq!(java_split("a,,", ','), vec!["a"]);
        assert_eq!(java_split(",", ','), Vec::<&str>::new());
    }

    #[test]
    fn epoch_prints_like_java_in_utc() {
        std::env::set_var("TZ", "UTC");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
    }
}
