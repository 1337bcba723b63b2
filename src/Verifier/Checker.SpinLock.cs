namespace BpfJit.Verifier;

/// <summary>
/// bpf_spin_lock and bpf_spin_unlock (the kernel's process_spin_lock): a lock is the
/// <c>struct bpf_spin_lock</c> of a map value whose BTF type has one, passed at its exact offset; one
/// lock is held at a time, no helper but bpf_spin_unlock is called and the main program does not exit
/// while it is held, and loads and stores never touch the lock word.
/// </summary>
internal sealed partial class Checker
{
    const int SpinLockSize = 4;

    void ProcessSpinLock(int regno, in RegState reg, bool lockIt)
    {
        if (!reg.VarOff.IsConst)
            throw Err($"R{regno} doesn't have constant offset. bpf_spin_lock has to be at the constant offset");
        var map = Map(reg.Aux);
        if (!map.HasBtf) throw Err($"map '{map.Name}' has to have BTF in order to use bpf_spin_lock");
        if (map.SpinLockOffset < 0) throw Err($"map '{map.Name}' has no valid bpf_spin_lock");
        long off = (long)reg.VarOff.Value + reg.Off;
        if (off != map.SpinLockOffset)
            throw Err($"off {off} doesn't point to 'struct bpf_spin_lock' that is at {map.SpinLockOffset}");
        if (lockIt)
        {
            if (_cur.LockMap >= 0) throw Err("Locking two bpf_spin_locks are not allowed");
            _cur.LockMap = reg.Aux;
            _cur.LockId = reg.Id;
            return;
        }
        if (_cur.LockMap < 0) throw Err("bpf_spin_unlock without taking a lock");
        if (_cur.LockMap != reg.Aux || _cur.LockId != reg.Id) throw Err("bpf_spin_unlock of different lock");
        _cur.LockMap = -1;
        _cur.LockId = 0;
    }

    /// <summary>check_map_access: no load, store or helper access may touch the value's bpf_spin_lock.</summary>
    void CheckSpinLockOverlap(int regno, in RegState reg, int off, int size)
    {
        int lockOff = Map(reg.Aux).SpinLockOffset;
        if (lockOff < 0) return;
        if (reg.Smin + off < lockOff + SpinLockSize && lockOff < (long)reg.Umax + off + size)
            throw Err("bpf_spin_lock cannot be accessed directly by load/store");
    }
}
