//! Finding the effective policy: the three rules.d directories, ordered by file name, later directories
//! overriding and masking earlier ones; explicit `--rules` paths; the refusal of unsafe permissions.
