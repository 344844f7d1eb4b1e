//! How output looks: colour on a terminal (or as `--color` says), diagnostics through miette's graphical
//! handler, small styling helpers for tables.

use crate::args::Color;
use crrules_rules::Diagnostic;
use miette::{GraphicalReportHandler, GraphicalTheme};
use std::io::IsTerminal;

/// Output settings for one run.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Colour on standard output.
    pub color_out: bool,
    /// Colour on standard error.
    pub color_err: bool,
    /// Standard error is a terminal (progress bars go there).
    pub err_tty: bool,
}

impl Ui {
    pub fn new(color: Color) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let pick = |tty: bool| match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => tty && !no_color,
        };
        let err_tty = std::io::stderr().is_terminal();
        Ui { color_out: pick(std::io::stdout().is_terminal()), color_err: pick(err_tty), err_tty }
    }

    /// Makes miette's reports (the "could not run" errors) follow the colour choice.
    pub fn install_miette(&self) {
        let (color, width) = (self.color_err, self.width());
        let _ = miette::set_hook(Box::new(move |_| {
            Box::new(GraphicalReportHandler::new_themed(theme(color)).with_width(width))
        }));
    }

    /// Prints diagnostics to standard error, each with its file, line, column and underlined text.
    pub fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        let handler = GraphicalReportHandler::new_themed(theme(self.color_err)).with_width(self.width());
        for d in diagnostics {
            let mut out = String::new();
            if handler.render_report(&mut out, &d.drawable()).is_ok() {
                eprint!("{out}");
            } else {
                eprintln!("{}: {}", d.code, d.message);
            }
        }
    }

    /// Diagnostics wrap at 100 columns on a terminal; piped, a message stays on one line for tools.
    fn width(&self) -> usize {
        if self.err_tty { 100 } else { 400 }
    }

    /// A one-line note on standard error.
    pub fn note(&self, text: &str) {
        eprintln!("{}", self.err(Style::Dim, text));
    }

    /// `text` styled for standard output.
    pub fn out(&self, style: Style, text: &str) -> String {
        paint(self.color_out, style, text)
    }

    /// The escape codes that start and end `style` on standard output (empty without colour), for text
    /// written piece by piece.
    pub fn out_codes(&self, style: Style) -> (&'static str, &'static str) {
        if self.color_out { (start_code(style), END_CODE) } else { ("", "") }
    }

    /// `text` styled for standard error.
    pub fn err(&self, style: Style, text: &str) -> String {
        paint(self.color_err, style, text)
    }
}

fn theme(color: bool) -> GraphicalTheme {
    if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() }
}

/// The few styles the tables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bold,
    Dim,
    Good,
    Warn,
    Bad,
}

/// Ends every style.
const END_CODE: &str = "\x1b[0m";

fn start_code(style: Style) -> &'static str {
    match style {
        Style::Bold => "\x1b[1m",
        Style::Dim => "\x1b[2m",
        Style::Good => "\x1b[32m",
        Style::Warn => "\x1b[33m",
        Style::Bad => "\x1b[1;31m",
    }
}

fn paint(on: bool, style: Style, text: &str) -> String {
    if !on {
        return text.to_owned();
    }
    format!("{}{text}{END_CODE}", start_code(style))
}
