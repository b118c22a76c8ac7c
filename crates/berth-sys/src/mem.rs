//! The process heap: giving freed memory back to the system.

/// Returns the heap's free memory to the system (glibc `malloc_trim(0)`): after a
/// large buffer is freed, glibc's raised mmap threshold keeps such blocks in its arenas
/// otherwise. A no-op on other C libraries.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim takes no pointers and only reorganises glibc's own
        // arenas; it may be called at any time from any thread.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trim_heap_after_a_large_free() {
        drop(vec![1u8; 8 << 20]);
        super::trim_heap();
    }
}
