namespace BpfJit.Verifier;

/// <summary>
/// The special fields of a map value (the kernel's btf_record): bpf_spin_lock and bpf_spin_unlock (process_spin_lock):
/// a lock is the <c>struct bpf_spin_lock</c> of a map value whose BTF type has one, passed at its exact offset; one
/// lock is held at a time, no helper but bpf_spin_unlock is called and the main program does not exit
/// while it is held. The bpf_timer helpers take the value's <c>struct bpf_timer</c> the same way
/// (process_timer_func). Loads and stores never touch either field.
/// </summary>
internal sealed partial class Checker
{
    const int SpinLockSize = 4;
    const int TimerSize = 16;

    /// <summary>The kernel's check_map_field_pointer: a pointer to the value's field <c>struct <paramref name="field"/></c> at <paramref name="fieldOff"/>.</summary>
    void CheckMapFieldPointer(int regno, in RegState reg, string field, int fieldOff)
    {
        if (!reg.VarOff.IsConst)
            throw Err($"R{regno} doesn't have constant offset. {field} has to be at the constant offset");
        var map = Map(reg.Aux);
        if (!map.HasBtf) throw Err($"map '{map.Name}' has to have BTF in order to use {field}");
        if (fieldOff < 0) throw Err($"map '{map.Name}' has no valid {field}");
        long off = (long)reg.VarOff.Value + reg.Off;
        if (off != fieldOff)
            throw Err($"off {off} doesn't point to 'struct {field}' that is at {fieldOff}");
    }

    /// <summary>process_timer_func: the timer's map becomes the call's map (bpf_timer_init's map argument must be it).</summary>
    void ProcessTimer(int regno, in RegState reg, CallMeta meta)
    {
        CheckMapFieldPointer(regno, reg, "bpf_timer", Map(reg.Aux).TimerOffset);
        meta.MapIndex = reg.Aux;
    }

    void ProcessSpinLock(int regno, in RegState reg, bool lockIt)
    {
        CheckMapFieldPointer(regno, reg, "bpf_spin_lock", Map(reg.Aux).SpinLockOffset);
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
}
