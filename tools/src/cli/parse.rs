//! How zkCli cuts a line into words (`MyCommandOptions.parseCommand`) and then a command's words
//! into options and arguments (commons-cli 1.5's `DefaultParser`), with the same corner cases and
//! error texts, since scripts written for zkCli depend on both.

/// Java's `\s`: space, tab, newline, vertical tab, form feed, carriage return.
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// `parseCommand`: repeated `find` of `\s*([^"']\S*|"[^"]*"|'[^']*')\s*`, then a word wrapped
/// in matching quotes loses them. An unclosed quote is skipped, as the regex skips it.
pub fn split_line(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        match match_word_at(&chars, start) {
            Some((word, end)) => {
                words.push(strip_quotes(&word));
                start = end;
            }
            None => start += 1,
        }
    }
    words
}

/// One attempt of the regex anchored at `s`: the word and where the match ends.
fn match_word_at(chars: &[char], s: usize) -> Option<(String, usize)> {
    let spaces = chars[s..].iter().take_while(|c| is_java_space(**c)).count();
    // `\s*` is greedy and backtracks: try the longest run of spaces first.
    for j in (0..=spaces).rev() {
        let at = s + j;
        let Some(&c) = chars.get(at) else { continue };
        let group_end = if c != '"' && c != '\'' {
            at + 1 + chars[at + 1..].iter().take_while(|c| !is_java_space(**c)).count()
        } else {
            match chars[at + 1..].iter().position(|x| *x == c) {
                Some(close) => at + 1 + close + 1,
                None => continue,
            }
        };
        let word: String = chars[at..group_end].iter().collect();
        let end = group_end + chars[group_end..].iter().take_while(|c| is_java_space(**c)).count();
        return Some((word, end));
    }
    None
}

/// `QUOTED_PATTERN`: `^(['"])(.*)(\1)$`.
fn strip_quotes(word: &str) -> String {
    let mut it = word.chars();
    match (it.next(), it.next_back()) {
        (Some(a), Some(b)) if a == b && (a == '"' || a == '\'') && !word[1..word.len() - 1].contains('\n') => {
            word[1..word.len() - 1].to_string()
        }
        _ => word.to_string(),
    }
}

/// One option: its letter, whether it takes a value, and its description (which
/// `MissingOptionException` and `ls -?` print).
#[derive(Clone, Copy)]
pub struct Opt {
    /// The name after the dash (`v`, or `members` for reconfig's multi-letter options).
    pub name: &'static str,
    /// Whether the next word (or the rest of this one) is its value.
    pub takes_value: bool,
    /// commons-cli's description, which some error texts quote.
    pub description: &'static str,
}

/// A command's options, with at most one exclusive group (setquota's, delquota's).
pub struct Spec {
    /// The options the command knows; any other `-x` is an error.
    pub opts: &'static [Opt],
    /// Names of the exclusive group and whether one of them is required.
    pub group: Option<(&'static [&'static str], bool)>,
}

/// The outcome of a successful parse.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Non-option words, the command's name first.
    pub args: Vec<String>,
    opts: Vec<(&'static str, Option<String>)>,
}

impl Parsed {
    /// Whether the option was given.
    pub fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The option's first value, as `CommandLine.getOptionValue` returns it.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.opts.iter().find(|(n, v)| *n == name && v.is_some()).and_then(|(_, v)| v.as_deref())
    }
}

/// A `ParseException` as zkCli prints it: `Throwable.toString()` of the commons-cli exception.
fn parse_error(class: &str, message: String) -> String {
    format!("org.apache.commons.cli.{class}: {message}")
}

/// `Double.parseDouble` succeeds: a value that looks like an option is still a value then.
fn is_number(token: &str) -> bool {
    let t = token.trim().trim_end_matches(['d', 'D', 'f', 'F']);
    !t.is_empty() && !t.eq_ignore_ascii_case("inf") && t.parse::<f64>().is_ok()
}

struct Parser<'a> {
    spec: &'a Spec,
    out: Parsed,
    /// The option waiting for its value.
    pending: Option<&'static str>,
    selected: Option<&'static str>,
}

impl Parser<'_> {
    fn opt(&self, name: &str) -> Option<&'static Opt> {
        self.spec.opts.iter().find(|o| o.name == name)
    }

    /// `isShortOption`: `-x...` where the name, or its first letter, is an option.
    fn is_option(&self, token: &str) -> bool {
        if !token.starts_with('-') || token.len() == 1 {
            return false;
        }
        let name = &token[1..];
        let name = name.split('=').next().unwrap_or(name);
        self.opt(name).is_some() || name.chars().next().is_some_and(|c| self.opt(&c.to_string()).is_some())
    }

    /// `checkRequiredArgs`: an option that takes a value must have had one by now.
    fn check_pending(&self) -> Result<(), String> {
        match self.pending {
            Some(p) => Err(parse_error("MissingArgumentException", format!("Missing argument for option: {p}"))),
            None => Ok(()),
        }
    }

    fn handle_option(&mut self, opt: &'static Opt) -> Result<(), String> {
        let name = opt.name;
        self.check_pending()?;
        if let Some((group, _)) = self.spec.group {
            if group.contains(&name) {
                match self.selected {
                    Some(s) if s != name => {
                        return Err(parse_error(
                            "AlreadySelectedException",
                            format!(
                                "The option '{name}' was specified but an option from this group has already been \
                                 selected: '{s}'"
                            ),
                        ));
                    }
                    _ => self.selected = Some(name),
                }
            }
        }
        self.out.opts.push((name, None));
        self.pending = if opt.takes_value { Some(name) } else { None };
        Ok(())
    }

    fn add_value(&mut self, value: &str) {
        if let Some(last) = self.out.opts.last_mut() {
            last.1 = Some(value.to_string());
        }
        self.pending = None;
    }

    fn unknown(&mut self, token: &str) -> Result<(), String> {
        if token.starts_with('-') && token.len() > 1 {
            return Err(parse_error("UnrecognizedOptionException", format!("Unrecognized option: {token}")));
        }
        self.out.args.push(token.to_string());
        Ok(())
    }

    fn short(&mut self, token: &str) -> Result<(), String> {
        let t = &token[1..];
        match t.find('=') {
            None => {
                if let Some(o) = self.opt(t) {
                    return self.handle_option(o);
                }
                if t.chars().count() == 1 {
                    return self.unknown(token);
                }
                // `-abc`: options run together, the rest after one that takes a value being its
                // value (`-v5`).
                for (i, c) in token.char_indices().skip(1) {
                    let Some(o) = self.opt(&c.to_string()) else { return self.unknown(token) };
                    self.handle_option(o)?;
                    let rest = &token[i + c.len_utf8()..];
                    if self.pending.is_some() && !rest.is_empty() {
                        self.add_value(rest);
                        break;
                    }
                }
                Ok(())
            }
            Some(pos) => match self.opt(&t[..pos]) {
                Some(o) if o.takes_value && t[..pos].chars().count() == 1 => {
                    self.handle_option(o)?;
                    self.add_value(&t[pos + 1..]);
                    Ok(())
                }
                _ => self.unknown(token),
            },
        }
    }
}

/// `DefaultParser.parse(options, words)`: the words after the command's name may mix options
/// and arguments in any order; `--` ends the options.
pub fn parse(spec: &Spec, words: &[String]) -> Result<Parsed, String> {
    let mut p = Parser { spec, out: Parsed::default(), pending: None, selected: None };
    let mut skip = false;
    for token in words {
        let token = token.as_str();
        if skip {
            p.out.args.push(token.to_string());
        } else if token == "--" {
            skip = true;
        } else if p.pending.is_some() && (!p.is_option(token) || is_number(token)) {
            p.add_value(token);
        } else if token.starts_with("--") {
            p.unknown(token)?;
        } else if token.starts_with('-') && token != "-" {
            p.short(token)?;
        } else {
            p.unknown(token)?;
        }
    }
    p.check_pending()?;
    if let Some((group, true)) = spec.group {
        if p.selected.is_none() {
            let names: Vec<String> = group
                .iter()
                .filter_map(|g| spec.opts.iter().find(|o| o.name == *g))
                .map(|o| format!("-{} {}", o.name, o.description))
                .collect();
            return Err(parse_error(
                "MissingOptionException",
                format!("Missing required option: [{}]", names.join(", ")),
            ));
        }
    }
    Ok(p.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn lines_split_as_zkcli_splits_them() {
        assert_eq!(split_line("create /c/q \"hello world\""), words(&["create", "/c/q", "hello world"]));
        assert_eq!(split_line("create /c/r 'it is'"), words(&["create", "/c/r", "it is"]));
        assert_eq!(split_line("create /c/s a\"b"), words(&["create", "/c/s", "a\"b"]));
        assert_eq!(split_line("create /c/t \"a b"), words(&["create", "/c/t", "a", "b"]));
        assert_eq!(split_line("  ls   / "), words(&["ls", "/"]));
        assert_eq!(split_line("   "), words(&[" "]));
        assert_eq!(split_line("set /a \"\""), words(&["set", "/a", ""]));
    }

    const SET: Spec = Spec {
        opts: &[
            Opt { name: "s", takes_value: false, description: "stats" },
            Opt { name: "v", takes_value: true, description: "version" },
        ],
        group: None,
    };

    #[test]
    fn options_parse_as_commons_cli_parses_them() {
        let p = parse(&SET, &words(&["set", "-v5", "/c", "x"])).expect("parses");
        assert_eq!((p.value("v"), p.args.clone()), (Some("5"), words(&["set", "/c", "x"])));
        let p = parse(&SET, &words(&["set", "-v", "-1", "/c", "x"])).expect("parses");
        assert_eq!(p.value("v"), Some("-1"));
        let p = parse(&SET, &words(&["set", "/c", "x", "-s"])).expect("parses");
        assert!(p.has("s"));
        assert_eq!(
            parse(&SET, &words(&["set", "/c", "-1"])).map(|_| ()),
            Err("org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -1".into())
        );
        assert_eq!(
            parse(&SET, &words(&["set", "-v"])).map(|_| ()),
            Err("org.apache.commons.cli.MissingArgumentException: Missing argument for option: v".into())
        );
        let p = parse(&SET, &words(&["ls", "--", "-x"])).expect("parses");
        assert_eq!(p.args, words(&["ls", "-x"]));
    }

    #[test]
    fn exclusive_groups_are_enforced() {
        const QUOTA: Spec = Spec {
            opts: &[
                Opt { name: "n", takes_value: true, description: "num soft quota" },
                Opt { name: "b", takes_value: true, description: "bytes soft quota" },
            ],
            group: Some((&["n", "b"], true)),
        };
        assert_eq!(
            parse(&QUOTA, &words(&["setquota", "/c"])).map(|_| ()),
            Err(
                "org.apache.commons.cli.MissingOptionException: Missing required option: [-n num soft quota, -b bytes \
                 soft quota]"
                    .into()
            )
        );
        assert_eq!(
            parse(&QUOTA, &words(&["setquota", "-n", "1", "-b", "2", "/c"])).map(|_| ()),
            Err("org.apache.commons.cli.AlreadySelectedException: The option 'b' was specified but an option from \
                 this group has already been selected: 'n'"
                .into())
        );
    }
}
