//! The default policy, compiled into the binary from `policy/` and used when no policy directory holds a
//! rule file. Distributions install the same files into /usr/lib/crrules/rules.d.

/// The default policy's files, in order.
pub const POLICY: crrules_rules::policy::Builtin = &[
    ("10-devices.rules", include_str!("../policy/10-devices.rules")),
    ("20-files.rules", include_str!("../policy/20-files.rules")),
    ("30-ipc.rules", include_str!("../policy/30-ipc.rules")),
];
