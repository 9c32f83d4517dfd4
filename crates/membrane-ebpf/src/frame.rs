//! One view of a packet for tc and XDP programs, so that parsing, header rewrites and
//! FIB lookups are written once.
//!
//! tc programs see an skb: bytes are read and written through the skb helpers, which
//! also update the checksums (and the skb's checksum state). XDP programs see the raw
//! frame: bytes are read and written in place after a bounds check, and checksums are
//! updated incrementally (RFC 1624) by the same arithmetic the helpers use.

use aya_ebpf::programs::{TcContext, XdpContext};
use core::ffi::c_void;
use membrane_common::metrics::reason;

/// The low bits of a checksum update's flags: the size of the replaced field (2 or 4),
/// or 0 when `to` is a ready checksum difference (from `bpf_csum_diff`).
const FIELD_SIZE_MASK: u64 = 0xf;
/// UDP: a zero checksum means "none" and stays zero; a computed zero is sent as 0xffff.
const MANGLED_0: u64 = aya_ebpf::bindings::BPF_F_MARK_MANGLED_0 as u64;

/// A packet as a program sees it.
pub trait Frame {
    /// Start of the directly readable bytes.
    fn data(&self) -> usize;
    /// End of the directly readable bytes.
    fn data_end(&self) -> usize;
    /// The packet's length in bytes.
    fn len(&self) -> u32;
    /// Makes the first `len` bytes directly readable, if the packet is that long.
    fn pull(&self, len: u32);
    /// Reads a `T` at `offset`.
    fn load<T: Copy>(&self, offset: usize) -> Result<T, u8>;
    /// Writes `value` at `offset`.
    fn store<T: Copy>(&self, offset: usize, value: &T) -> Result<(), u8>;
    /// Updates the IPv4 header checksum at `offset` for a field of `size` bytes that
    /// changes from `from` to `to` (values as they lie in the packet).
    fn l3_csum_replace(&self, offset: usize, from: u64, to: u64, size: u64) -> Result<(), u8>;
    /// Updates the L4 checksum at `offset`, with the flags of `bpf_l4_csum_replace`.
    fn l4_csum_replace(&self, offset: usize, from: u64, to: u64, flags: u64) -> Result<(), u8>;
    /// The context pointer helpers such as `bpf_fib_lookup` take.
    fn as_ptr(&self) -> *mut c_void;
}

impl Frame for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        TcContext::len(self)
    }
    #[inline(always)]
    fn pull(&self, len: u32) {
        let wanted = TcContext::len(self).min(len);
        if TcContext::data_end(self) - TcContext::data(self) < wanted as usize {
            let _ = self.pull_data(wanted);
        }
    }
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Result<T, u8> {
        TcContext::load(self, offset).map_err(|_| reason::DROP_REWRITE_FAILED)
    }
    #[inline(always)]
    fn store<T: Copy>(&self, offset: usize, value: &T) -> Result<(), u8> {
        TcContext::store(self, offset, value, 0).map_err(|_| reason::DROP_REWRITE_FAILED)
    }
    #[inline(always)]
    fn l3_csum_replace(&self, offset: usize, from: u64, to: u64, size: u64) -> Result<(), u8> {
        TcContext::l3_csum_replace(self, offset, from, to, size)
            .map_err(|_| reason::DROP_REWRITE_FAILED)
    }
    #[inline(always)]
    fn l4_csum_replace(&self, offset: usize, from: u64, to: u64, flags: u64) -> Result<(), u8> {
        TcContext::l4_csum_replace(self, offset, from, to, flags)
            .map_err(|_| reason::DROP_REWRITE_FAILED)
    }
    #[inline(always)]
    fn as_ptr(&self) -> *mut c_void {
        self.skb.skb.cast()
    }
}

// The context's fields are read with volatile loads: otherwise LLVM may pass them to a
// non-inlined function as plain integers instead of the context pointer, and the
// verifier refuses arithmetic (the 32-to-64-bit widening) on the packet pointers.
impl Frame for XdpContext {
    #[inline(always)]
    fn data(&self) -> usize {
        // SAFETY: ctx is the program's context pointer, valid for the whole run.
        unsafe { core::ptr::read_volatile(&(*self.ctx).data) as usize }
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        // SAFETY: as in `data`.
        unsafe { core::ptr::read_volatile(&(*self.ctx).data_end) as usize }
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        (Frame::data_end(self) - Frame::data(self)) as u32
    }
    #[inline(always)]
    fn pull(&self, _len: u32) {
        // An XDP frame's first buffer is all directly readable.
    }
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Result<T, u8> {
        let at = in_frame::<T>(self, offset)?;
        // SAFETY: in_frame checked that the whole `T` lies within [data, data_end).
        Ok(unsafe { core::ptr::read_unaligned(at as *const T) })
    }
    #[inline(always)]
    fn store<T: Copy>(&self, offset: usize, value: &T) -> Result<(), u8> {
        let at = in_frame::<T>(self, offset)?;
        // SAFETY: as in load; XDP frames are writable in place.
        unsafe { core::ptr::write_unaligned(at as *mut T, *value) };
        Ok(())
    }
    #[inline(always)]
    fn l3_csum_replace(&self, offset: usize, from: u64, to: u64, size: u64) -> Result<(), u8> {
        let old: u16 = self.load(offset)?;
        let new = csum_update(old, from, to, size & FIELD_SIZE_MASK);
        self.store(offset, &new)
    }
    #[inline(always)]
    fn l4_csum_replace(&self, offset: usize, from: u64, to: u64, flags: u64) -> Result<(), u8> {
        let old: u16 = self.load(offset)?;
        if flags & MANGLED_0 != 0 && old == 0 {
            return Ok(());
        }
        let mut new = csum_update(old, from, to, flags & FIELD_SIZE_MASK);
        if flags & MANGLED_0 != 0 && new == 0 {
            new = 0xffff;
        }
        self.store(offset, &new)
    }
    #[inline(always)]
    fn as_ptr(&self) -> *mut c_void {
        self.ctx.cast()
    }
}

/// The address of a `T` at `offset` in `frame`, if it lies inside.
#[inline(always)]
fn in_frame<T>(frame: &XdpContext, offset: usize) -> Result<usize, u8> {
    let start = Frame::data(frame);
    if start + offset + core::mem::size_of::<T>() > Frame::data_end(frame) {
        return Err(reason::DROP_INVALID_PACKET);
    }
    Ok(start + offset)
}

/// The checksum `old` after a field changed from `from` to `to` (`size` 2 or 4 bytes),
/// or after adding the difference `to` (`size` 0): RFC 1624's HC' = ~(~HC + ~m + m').
/// One's complement sums do not depend on byte order, so the values are taken as they
/// lie in memory, like the checksum itself.
#[inline(always)]
fn csum_update(old: u16, from: u64, to: u64, size: u64) -> u16 {
    let mut sum = u64::from(!old);
    match size {
        2 => sum += u64::from(!(from as u16)) + u64::from(to as u16),
        4 => {
            let (from, to) = (from as u32, to as u32);
            sum += u64::from(!(from as u16))
                + u64::from(!((from >> 16) as u16))
                + u64::from(to as u16)
                + u64::from((to >> 16) as u16);
        }
        _ => sum += u64::from(to as u32),
    }
    // Fold the carries back in: four rounds cover any 64-bit sum.
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
