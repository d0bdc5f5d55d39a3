//! `aya::Pod` for the records, so userspace can read them from maps and ring samples.
use super::*;

/// `aya::Pod` for records that are `bytemuck::Pod`: the bound is checked at compile time, so
/// only types with no padding and any-bit-pattern fields get the impl.
macro_rules! aya_pod {
    ($($t:ty),+ $(,)?) => {$(
        const _: () = is_pod::<$t>();
        // SAFETY: `is_pod` above proves the type is `bytemuck::Pod`: #[repr(C)], no padding,
        // every bit pattern valid — what `aya::Pod` requires.
        unsafe impl aya::Pod for $t {}
    )+};
}

const fn is_pod<T: bytemuck::Pod>() {}

aya_pod!(
    Header,
    ExecEvent,
    ForkEvent,
    ExitEvent,
    ExecArgvHeader,
    ExecArgvEvent,
    ExecResultEvent,
    TlsDataHeader,
    TlsDataEvent,
    TlsCloseEvent,
    crate::gate::AgentScope,
    crate::gate::GateExec,
    crate::gate::StopEvent,
    crate::gate::RequestStop,
    crate::gate::ConnKey,
    crate::gate::FileKey,
    crate::gate::LoadStop,
    crate::delete::DeleteEvent,
    crate::delete::PlaceValue,
);
