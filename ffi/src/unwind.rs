//! No panic unwinds into C: each entry point runs its body here.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `body`, returning `fallback` if it panics: unwinding into C is undefined
/// behaviour (Rust aborts the process instead), so no panic may leave this crate.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Runs `body`, turning a panic into its message.
pub(crate) fn catch_panic<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(body)).map_err(|panic| panic_message(&*panic).to_owned())
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic with no message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_where_a_value_is_returned_gives_the_fallback() {
        assert_eq!(guard_value(7, || -> i32 { panic!("a bug") }), 7);
    }

    #[test]
    fn a_caught_panic_keeps_its_message() {
        assert_eq!(
            catch_panic(|| panic!("a bug {}", 1)),
            Err::<(), _>("a bug 1".into())
        );
    }
}
