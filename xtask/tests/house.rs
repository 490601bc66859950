//! The house rules, checked on the sources of every workspace crate (issue 12):
//!
//! 1. **No import cycle between modules.** A module's references are the paths it writes that
//!    start with `crate::`, `super::` or `self::` (in `use` items, code, types, and macro
//!    arguments), outside `#[cfg(test)]` modules and items. A reference to a name a module only
//!    re-exports (`pub use x::Name`, or a private `use`) counts as one to the module it comes from.
//!    Modules are compared at each level of the tree as siblings with their whole subtrees:
//!    `engine::setup -> suite` and `suite::attempt -> engine` is a cycle between `engine` and
//!    `suite`. A module referring to its own ancestors (`super::Ctx`) or descendants is not.
//! 2. **No function over 80 lines** (from `fn` to its closing brace) outside tests, unless it is
//!    in [`LONG_FN_ALLOWED`] with its reason.
//!
//! Sources are parsed with syn, so braces in strings, comments and macros cannot fool the
//! count. Every violation of a crate is reported at once, each with file:line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// The longest a function may be, in lines from `fn` to its closing brace.
const MAX_FN_LINES: usize = 80;

/// Functions allowed to be longer than [`MAX_FN_LINES`]: (crate directory, `module::fn` as
/// reported, the reason). An entry that no longer matches a long function fails the check.
const LONG_FN_ALLOWED: &[(&str, &str, &str)] = &[];

/// Every crate of the workspace (its directory). A workspace member missing here fails
/// [`every_workspace_member_is_checked`].
const CRATES: &[&str] = &[
    "cargo-reap",
    "reap-probe",
    "reap-report",
    "reap-stack",
    "xtask",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The violations of every crate, one per line.
fn violations() -> Vec<String> {
    let root = workspace_root();
    let mut out = Vec::new();
    for dir in CRATES {
        let src = root.join(dir).join("src");
        if src.is_dir() {
            out.extend(check_crate(&src, dir));
        }
    }
    out
}

/// `path` relative to the workspace root when it is inside it.
fn shown(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn assert_clean(violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{} house rule violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn house_rules_hold() {
    assert_clean(violations());
}

#[test]
fn every_workspace_member_is_checked() {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if !member.is_empty() {
            assert!(
                CRATES.contains(&member),
                "workspace member {member} is not in CRATES of {}",
                file!()
            );
        }
    }
}

/// Every violation in the crate whose sources are in `src` (named `name` in the messages):
/// each crate root there (`lib.rs`, `main.rs`) is a crate of its own.
fn check_crate(src: &Path, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut long = BTreeSet::new();
    for root in ["lib.rs", "main.rs"] {
        let file = src.join(root);
        if !file.is_file() {
            continue;
        }
        let mut tree = Tree::default();
        tree.load_file(&file, Vec::new(), src.to_path_buf());
        out.append(&mut tree.errors);
        out.extend(tree.cycles(&format!("{name} ({root})")));
        for f in tree.fns_over_limit() {
            let allowed = LONG_FN_ALLOWED
                .iter()
                .any(|(krate, allowed, _)| *krate == name && *allowed == f.name);
            if !allowed {
                out.push(format!(
                    "{}: fn {} is {} lines (over {MAX_FN_LINES})",
                    f.at, f.name, f.lines
                ));
            }
            long.insert(f.name);
        }
    }
    // An allowance that excuses nothing any more goes.
    for (_, f, _) in LONG_FN_ALLOWED
        .iter()
        .filter(|(krate, f, _)| *krate == name && !long.contains(*f))
    {
        out.push(format!(
            "{name}: LONG_FN_ALLOWED names {f}, which is not over {MAX_FN_LINES} lines (any \
             more): remove the entry"
        ));
    }
    out
}

/// One module: its path from the crate root, its file, and its own items (not those of its
/// child modules, which are modules of their own).
struct Module {
    path: Vec<String>,
    file: PathBuf,
    items: Vec<syn::Item>,
}

/// The non-test modules of one crate.
#[derive(Default)]
struct Tree {
    modules: Vec<Module>,
    errors: Vec<String>,
}

/// True for `#[cfg(test)]`, `#[cfg(all(test, ...))]`, `#[test]`: code that exists only in tests.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        if a.path().is_ident("test") {
            return true;
        }
        if !a.path().is_ident("cfg") {
            return false;
        }
        let syn::Meta::List(list) = &a.meta else {
            return false;
        };
        let tokens: Vec<String> = flatten(list.tokens.clone())
            .iter()
            .map(|t| t.to_string())
            .collect();
        tokens.iter().any(|t| t == "test") && !tokens.iter().any(|t| t == "not" || t == "any")
    })
}

/// Every token of a stream, groups opened.
fn flatten(tokens: TokenStream) -> Vec<TokenTree> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            TokenTree::Group(g) => out.extend(flatten(g.stream())),
            other => out.push(other),
        }
    }
    out
}

/// The value of `#[path = "..."]`, if any.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

impl Tree {
    /// Parse `file` as module `path`, whose child module files are in `dir`.
    fn load_file(&mut self, file: &Path, path: Vec<String>, dir: PathBuf) {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => return self.errors.push(format!("{}: {e}", file.display())),
        };
        match syn::parse_file(&text) {
            Ok(parsed) => self.load_items(file, path, dir, parsed.items),
            Err(e) => {
                let at = e.span().start();
                self.errors
                    .push(format!("{}:{}: {e}", file.display(), at.line));
            }
        }
    }

    /// Record module `path` (in `file`) with `items`, then its non-test child modules.
    fn load_items(&mut self, file: &Path, path: Vec<String>, dir: PathBuf, items: Vec<syn::Item>) {
        let mut own = Vec::new();
        for item in items {
            let syn::Item::Mod(m) = item else {
                own.push(item);
                continue;
            };
            if is_test_only(&m.attrs) {
                continue;
            }
            let mut child = path.clone();
            child.push(m.ident.to_string());
            let child_dir = dir.join(m.ident.to_string());
            match (m.content, path_attr(&m.attrs)) {
                (Some((_, items)), _) => self.load_items(file, child, child_dir, items),
                (None, Some(p)) => {
                    let target = file.parent().unwrap_or(Path::new(".")).join(p);
                    let target_dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
                    self.load_file(&target, child, target_dir);
                }
                (None, None) => {
                    let flat = dir.join(format!("{}.rs", m.ident));
                    let nested = child_dir.join("mod.rs");
                    let target = if flat.is_file() { flat } else { nested };
                    self.load_file(&target, child, child_dir);
                }
            }
        }
        self.modules.push(Module {
            path,
            file: file.to_path_buf(),
            items: own,
        });
    }
}

/// A reference from a module's code to a path, where it was written.
struct Reference {
    /// Absolute segments (from the crate root).
    target: Vec<String>,
    line: usize,
    text: String,
}

/// Collects the `crate::` / `super::` / `self::` paths of a module's own items.
struct Refs<'a> {
    module: &'a [String],
    /// Every module of the crate: a path that starts with a child module's name is relative.
    known: &'a BTreeSet<Vec<String>>,
    out: Vec<Reference>,
}

impl Refs<'_> {
    /// Record `segments` (as written) if it starts at the crate root or relative to this module.
    fn add(&mut self, segments: &[String], line: usize) {
        let Some(first) = segments.first() else {
            return;
        };
        let supers = segments.iter().take_while(|s| *s == "super").count();
        let target: Vec<String> = match first.as_str() {
            "crate" => segments[1..].to_vec(),
            "self" => self.module.iter().chain(&segments[1..]).cloned().collect(),
            "super" if supers <= self.module.len() => self.module[..self.module.len() - supers]
                .iter()
                .chain(&segments[supers..])
                .cloned()
                .collect(),
            _ => {
                let relative: Vec<String> = self.module.iter().chain(segments).cloned().collect();
                if !self.known.contains(&relative[..=self.module.len()]) {
                    return;
                }
                relative
            }
        };
        self.out.push(Reference {
            target,
            line,
            text: segments.join("::"),
        });
    }

    /// The leaves of a `use` tree, each with its full path, e.g. `crate::{a, b::c}`.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.leaf(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.leaf(prefix, &r.ident),
            syn::UseTree::Glob(g) => {
                let line = g.star_token.spans[0].start().line;
                self.add(prefix, line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn leaf(&mut self, prefix: &[String], ident: &syn::Ident) {
        let mut full = prefix.to_vec();
        if ident != "self" {
            full.push(ident.to_string());
        }
        self.add(&full, ident.span().start().line);
    }

    /// Paths inside a macro's tokens: `crate :: a :: b`, `super :: x`, `self :: y`.
    fn tokens(&mut self, tokens: TokenStream) {
        let flat = flatten(tokens);
        let mut i = 0;
        while i < flat.len() {
            let TokenTree::Ident(start) = &flat[i] else {
                i += 1;
                continue;
            };
            if !matches!(start.to_string().as_str(), "crate" | "super" | "self") {
                i += 1;
                continue;
            }
            let mut segments = vec![start.to_string()];
            let mut j = i + 1;
            while let (
                Some(TokenTree::Punct(a)),
                Some(TokenTree::Punct(b)),
                Some(TokenTree::Ident(id)),
            ) = (flat.get(j), flat.get(j + 1), flat.get(j + 2))
            {
                if a.as_char() != ':' || b.as_char() != ':' {
                    break;
                }
                segments.push(id.to_string());
                j += 3;
            }
            if segments.len() > 1 {
                self.add(&segments, start.span().start().line);
            }
            i = j;
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = path.segments.first() {
            self.add(&segments, first.ident.span().start().line);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_test_only(&u.attrs) {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    // `pub(in crate::x)` names where an item is visible, not something it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !item_is_test_only(item) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if !matches!(item, syn::ImplItem::Fn(f) if is_test_only(&f.attrs)) {
            syn::visit::visit_impl_item(self, item);
        }
    }
}

/// The attributes of an item, for the ones that can carry `#[cfg(test)]`.
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn item_is_test_only(item: &syn::Item) -> bool {
    is_test_only(item_attrs(item))
}

/// The module a reference lands in: the longest module prefix of its target, followed
/// through `use` re-exports (at most 8 hops).
fn resolve(
    known: &BTreeSet<Vec<String>>,
    target: &[String],
    imports: &BTreeMap<(Vec<String>, String), Vec<String>>,
) -> Vec<String> {
    let mut target = target.to_vec();
    for _ in 0..8 {
        let k = (0..=target.len())
            .rev()
            .find(|&k| known.contains(&target[..k]))
            .unwrap_or(0);
        let module = target[..k].to_vec();
        let via = target
            .get(k)
            .and_then(|name| imports.get(&(module.clone(), name.clone())));
        match via {
            Some(next) if next.as_slice() != target.as_slice() => {
                target = next.iter().chain(&target[k + 1..]).cloned().collect();
            }
            _ => return module,
        }
    }
    target
}

/// One edge between sibling subtrees, with the reference that makes it.
struct Edge {
    from: Vec<String>,
    to: Vec<String>,
    at: String,
}

impl Tree {
    fn known(&self) -> BTreeSet<Vec<String>> {
        self.modules.iter().map(|m| m.path.clone()).collect()
    }

    /// The names a module imports with `use` (re-exports included): name -> the module the
    /// name comes from.
    fn imports(&self) -> BTreeMap<(Vec<String>, String), Vec<String>> {
        let known = self.known();
        let mut out = BTreeMap::new();
        for m in &self.modules {
            let mut refs = Refs {
                module: &m.path,
                known: &known,
                out: Vec::new(),
            };
            for item in m.items.iter().filter(|i| !item_is_test_only(i)) {
                if let syn::Item::Use(u) = item {
                    refs.use_tree(&mut Vec::new(), &u.tree);
                }
            }
            for r in refs.out {
                if let Some((name, _)) = r.target.split_last() {
                    out.insert((m.path.clone(), name.clone()), r.target);
                }
            }
        }
        out
    }

    /// Every reference between sibling subtrees, as the edge between those siblings.
    fn edges(&self) -> Vec<Edge> {
        let imports = self.imports();
        let known = self.known();
        let mut out = Vec::new();
        for m in &self.modules {
            let mut refs = Refs {
                module: &m.path,
                known: &known,
                out: Vec::new(),
            };
            for item in &m.items {
                refs.visit_item(item);
            }
            for r in refs.out {
                let to = resolve(&known, &r.target, &imports);
                let common = m.path.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == m.path.len() || common == to.len() {
                    continue; // itself, an ancestor or a descendant
                }
                out.push(Edge {
                    from: m.path[..=common].to_vec(),
                    to: to[..=common].to_vec(),
                    at: format!("{}:{} `{}`", shown(&m.file), r.line, r.text),
                });
            }
        }
        out
    }

    /// Each import cycle among sibling modules, named with one reference per step.
    fn cycles(&self, label: &str) -> Vec<String> {
        let edges = self.edges();
        let mut graph: BTreeMap<&[String], BTreeMap<&[String], &str>> = BTreeMap::new();
        for e in &edges {
            graph
                .entry(e.from.as_slice())
                .or_default()
                .entry(e.to.as_slice())
                .or_insert(e.at.as_str());
        }
        let mut out = Vec::new();
        let mut reported: BTreeSet<Vec<&[String]>> = BTreeSet::new();
        for start in graph.keys() {
            let Some(cycle) = shortest_cycle(&graph, start) else {
                continue;
            };
            let mut key = cycle.clone();
            key.sort();
            if !reported.insert(key) {
                continue;
            }
            let names: Vec<String> = cycle.iter().map(|p| name(p)).collect();
            let mut text = format!(
                "{label}: import cycle {} -> {}",
                names.join(" -> "),
                names[0]
            );
            for (i, from) in cycle.iter().enumerate() {
                let to = cycle[(i + 1) % cycle.len()];
                let _ = write!(
                    text,
                    "\n    {} -> {}: {}",
                    name(from),
                    name(to),
                    graph[from][to]
                );
            }
            out.push(text);
        }
        out
    }
}

/// `a::b`, or `crate` for the root.
fn name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        path.join("::")
    }
}

/// The shortest path from `start` back to itself (breadth first), if there is one.
fn shortest_cycle<'a>(
    graph: &BTreeMap<&'a [String], BTreeMap<&'a [String], &str>>,
    start: &'a [String],
) -> Option<Vec<&'a [String]>> {
    let mut parent: BTreeMap<&[String], &[String]> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in graph.get(node).into_iter().flat_map(|n| n.keys()) {
            if next == start {
                let mut cycle = vec![node];
                while let Some(&p) = parent.get(cycle.last().unwrap()) {
                    cycle.push(p);
                }
                cycle.reverse();
                return Some(cycle);
            }
            if next != start && !parent.contains_key(next) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// A function over the limit.
struct LongFn {
    /// `module::fn` (`module::Type::fn` for methods).
    name: String,
    at: String,
    lines: usize,
}

/// Collects the functions of a module's own items, outside tests.
struct Fns<'a> {
    module: &'a Module,
    owner: Vec<String>,
    out: Vec<LongFn>,
}

impl Fns<'_> {
    fn check(&mut self, ident: &syn::Ident, fn_token: &syn::token::Fn, block: &syn::Block) {
        let first = fn_token.span.start().line;
        let last = block.brace_token.span.close().end().line;
        let lines = last + 1 - first;
        if lines > MAX_FN_LINES {
            let mut path = self.module.path.clone();
            path.extend(self.owner.iter().cloned());
            path.push(ident.to_string());
            self.out.push(LongFn {
                name: path.join("::"),
                at: format!("{}:{first}", shown(&self.module.file)),
                lines,
            });
        }
    }
}

impl<'ast> Visit<'ast> for Fns<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !item_is_test_only(item) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.check(&f.sig.ident, &f.sig.fn_token, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let owner = match &*i.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        self.owner.push(owner.unwrap_or_else(|| "impl".into()));
        syn::visit::visit_item_impl(self, i);
        self.owner.pop();
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.owner.push(t.ident.to_string());
        syn::visit::visit_item_trait(self, t);
        self.owner.pop();
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            self.check(&f.sig.ident, &f.sig.fn_token, &f.block);
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.check(&f.sig.ident, &f.sig.fn_token, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

impl Tree {
    /// Every non-test function over [`MAX_FN_LINES`].
    fn fns_over_limit(&self) -> Vec<LongFn> {
        let mut out = Vec::new();
        for m in &self.modules {
            let mut fns = Fns {
                module: m,
                owner: Vec::new(),
                out: Vec::new(),
            };
            for item in &m.items {
                fns.visit_item(item);
            }
            out.append(&mut fns.out);
        }
        out
    }
}

// The checker itself, on small crates written for it: each rule must catch what it is for.

/// A crate of `files` (path under src, text) in a fresh directory; its violations.
fn check_sample(test: &str, files: &[(&str, &str)]) -> Vec<String> {
    let src = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("house")
        .join(test)
        .join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).unwrap();
    }
    for (path, text) in files {
        let file = src.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    check_crate(&src, "sample")
}

/// A function of `n` lines from `fn` to `}`, braces in its strings and comments.
fn long_fn(name: &str, n: usize) -> String {
    let mut text = format!("pub fn {name}() {{\n");
    for i in 0..n - 2 {
        text.push_str(&format!("    let _x{i} = \"}}}}{{\"; // }} {{\n"));
    }
    text.push_str("}\n");
    text
}

#[test]
fn checker_names_a_cycle_between_siblings_with_its_references() {
    let found = check_sample(
        "cycle",
        &[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("a.rs", "use crate::b::f;\npub fn g() { f() }\n"),
            ("b/mod.rs", "mod inner;\npub fn f() {}\n"),
            ("b/inner.rs", "pub fn h() { super::super::a::g(); }\n"),
            ("c.rs", "pub fn k() { crate::a::g() }\n"),
        ],
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("sample (lib.rs): import cycle a -> b -> a"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("a.rs:1 `crate::b::f`"), "{}", found[0]);
    assert!(
        found[0].contains("inner.rs:1 `super::super::a::g`"),
        "{}",
        found[0]
    );
}

#[test]
fn checker_follows_re_exports_and_macro_arguments() {
    let found = check_sample(
        "reexport",
        &[
            ("lib.rs", "mod a;\nmod b;\npub use a::Thing;\n"),
            (
                "a.rs",
                "pub struct Thing;\npub fn g() { println!(\"{}\", crate::b::N); }\n",
            ),
            (
                "b.rs",
                "pub const N: u8 = 1;\npub fn f(_: &crate::Thing) {}\n",
            ),
        ],
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("import cycle a -> b -> a"),
        "{}",
        found[0]
    );
}

#[test]
fn checker_ignores_test_code_and_references_up_and_down_the_tree() {
    let found = check_sample(
        "clean",
        &[
            (
                "lib.rs",
                "mod a;\nmod b;\npub struct Root;\n#[cfg(test)]\nmod tests;\n",
            ),
            (
                "a.rs",
                "mod child;\npub fn g() -> crate::Root { child::c() }\n\
                 #[cfg(test)]\nmod t { fn x() { crate::b::f() } }\n",
            ),
            (
                "a/child.rs",
                "pub fn c() -> super::super::Root { crate::Root }\n",
            ),
            (
                "b.rs",
                "pub fn f() { crate::a::g(); }\n#[cfg(test)]\nfn helper() { }\n",
            ),
            ("tests.rs", "fn t() { crate::b::f(); crate::a::g(); }\n"),
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn checker_counts_function_lines_whatever_their_strings_and_comments_hold() {
    let lib = format!(
        "pub struct S;\nimpl S {{\n{}}}\n{}\n#[cfg(test)]\nmod tests {{\n{}}}\n",
        long_fn("method", MAX_FN_LINES + 1),
        long_fn("just_fits", MAX_FN_LINES),
        long_fn("in_tests", MAX_FN_LINES + 20),
    );
    let found = check_sample("length", &[("lib.rs", &lib)]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].ends_with(&format!(
            "src/lib.rs:3: fn S::method is {} lines (over {MAX_FN_LINES})",
            MAX_FN_LINES + 1
        )),
        "{}",
        found[0]
    );
}
