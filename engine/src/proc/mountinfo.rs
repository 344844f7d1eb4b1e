//! `/proc/PID/mountinfo` -> mount id to filesystem type, read once per process.

use std::collections::HashMap;

/// Mount id -> filesystem type (`ext4`, `tmpfs`, `fuse.sshfs`).
pub fn fs_types(text: &str) -> HashMap<u64, String> {
    text.lines().filter_map(parse_line).map(|(id, fs)| (id, fs.to_string())).collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw` -> (36, "ext3"). The optional fields
/// end at a lone `-`; the type is the word after it. Escaped blanks (`\040`) never split a field.
fn parse_line(line: &str) -> Option<(u64, &str)> {
    let mut words = line.split(' ');
    let id = words.next()?.parse().ok()?;
    let mut words = words.skip_while(|w| *w != "-");
    words.next()?;
    let fs = words.next().filter(|w| !w.is_empty())?;
    Some((id, fs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_to_types() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    36 35 98:0 /mnt1 /my\\040dir rw,noatime master:1 shared:2 - fuse.sshfs host:/ rw\n\
                    garbage\n\
                    40 1 0:1 / /x rw -\n";
        let m = fs_types(text);
        assert_eq!(m.get(&22).map(String::as_str), Some("proc"));
        assert_eq!(m.get(&36).map(String::as_str), Some("fuse.sshfs"));
        assert_eq!(m.len(), 2);
    }
}
