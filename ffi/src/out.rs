//! `Out`: a C out-pointer, cleared when taken and set only on success.

use std::mem::MaybeUninit;

/// A value an output holds until a function succeeds: NULL or zero.
pub(crate) trait Cleared {
    /// The value written at entry.
    const CLEARED: Self;
}

impl<T> Cleared for *mut T {
    const CLEARED: Self = std::ptr::null_mut();
}

impl<T> Cleared for *const T {
    const CLEARED: Self = std::ptr::null();
}

impl Cleared for u64 {
    const CLEARED: Self = 0;
}

impl Cleared for usize {
    const CLEARED: Self = 0;
}

/// Where a function writes one output for its caller. Taking it writes
/// [`Cleared::CLEARED`], so a failure leaves NULL or zero behind, never a stale value;
/// [`Out::set`] then writes the result without `unsafe`.
#[derive(Debug)]
pub(crate) struct Out<'a, T>(&'a mut T);

impl<'a, T: Cleared> Out<'a, T> {
    /// Clears the output at `ptr` and takes it, or `None` for NULL.
    ///
    /// # Safety
    ///
    /// `ptr` is NULL, or aligned and valid for writes of a `T` for `'a`, and nothing
    /// else reads or writes it meanwhile. It need not be initialized.
    pub(crate) unsafe fn take(ptr: *mut T) -> Option<Self> {
        // SAFETY: the caller's promise; `MaybeUninit` because C may pass a variable it
        // never initialized, which a `&mut T` must not point to.
        let slot = unsafe { ptr.cast::<MaybeUninit<T>>().as_mut() }?;
        Some(Out(slot.write(T::CLEARED)))
    }

    /// Writes the result.
    pub(crate) fn set(self, value: T) {
        *self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_an_output_clears_it_and_set_writes_it() {
        let mut slot: *const u8 = std::ptr::dangling();
        // SAFETY: `slot` is a local, not otherwise used until `out` is gone.
        assert!(unsafe { Out::take(&mut slot) }.is_some());
        assert!(slot.is_null());

        let mut len = 7_usize;
        // SAFETY: as above.
        let out = unsafe { Out::take(&mut len) }.expect("not NULL");
        out.set(3);
        assert_eq!(len, 3);
    }

    #[test]
    fn a_null_output_is_none() {
        // SAFETY: NULL is allowed.
        assert!(unsafe { Out::<u64>::take(std::ptr::null_mut()) }.is_none());
    }
}
