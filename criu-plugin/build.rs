//! Links this package's test executables with `-rdynamic`: they stand in for the `criu` binary, whose
//! exported `criu_get_image_dir`, `print_on_level` and `cr_plugin_ctl` the plugin finds with
//! `dlsym(RTLD_DEFAULT, ...)`, so theirs must be in the dynamic symbol table too.

fn main() {
    println!("cargo::rustc-link-arg-tests=-rdynamic");
}
