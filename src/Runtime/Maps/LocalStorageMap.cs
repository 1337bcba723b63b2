using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_TASK_STORAGE and BPF_MAP_TYPE_CGRP_STORAGE, the kernel's local-storage maps (kernel/bpf/bpf_local_storage.c,
/// bpf_task_storage.c, bpf_cgrp_storage.c): at most one value per owner (a task, a cgroup), made on demand by the owner's
/// storage_get helper with BPF_LOCAL_STORAGE_GET_F_CREATE or by a userspace update, and charged per element (there is no
/// max_entries: it must be 0). Here an owner is a number: a task is a host thread, by its thread id (what gettid gives);
/// a cgroup is a cgroup v2 cgroup, by its id (the inode number of its directory, what bpf_get_current_cgroup_id gives).
/// <para>
/// Userspace's 4-byte key, an fd in the kernel (a pidfd, a cgroup fd), is that number here: a key of 0 or below is -EBADF
/// (no descriptor is), a TASK_STORAGE key that is not a live thread of the host process -ENOENT (as a pidfd of a task
/// that has exited). get_next_key is -ENOTSUPP, as the kernel's notsupp_get_next_key.
/// </para>
/// <para>
/// A value is native memory a program holds a pointer to: an update without BPF_F_LOCK builds a new element and the
/// replaced one, like a deleted one, is freed after the programs running now end (<see cref="MapEpoch"/>), as the kernel
/// frees a storage element after an RCU grace period.
/// </para>
/// <para>
/// The kernel frees a task's storage when the task exits (bpf_task_storage_free). Here a value a program made for its
/// thread is tied to that thread (<see cref="TaskOwner"/>): when the thread ends, its values in every TASK_STORAGE map are
/// freed and their charge returned, by a finaliser the next garbage collection runs (nothing is added to a program's run).
/// Until then a userspace operation on a thread id that is no longer a live thread frees that id's value and gets -ENOENT,
/// and a later thread that reuses the id does not see the ended thread's value.
/// </para>
/// </summary>
public sealed unsafe class LocalStorageMap : BpfMap
{
    /// <summary>sizeof(struct bpf_local_storage_elem) on x86-64: the element's header, charged with its value.</summary>
    public const int ElementHeader = 128;

    /// <summary>
    /// BPF_LOCAL_STORAGE_MAX_VALUE_SIZE: U16_MAX less the element header (the smaller of that and KMALLOC_MAX_SIZE less
    /// MAX_BPF_STACK and the header); a larger value_size is E2BIG.
    /// </summary>
    public const uint MaxValueSize = ushort.MaxValue - ElementHeader;

    /// <summary>BPF_LOCAL_STORAGE_GET_F_CREATE: the storage_get helpers' one flag.</summary>
    public const ulong GetFCreate = 1;

    /// <summary>An element: its value's native block, and for a value a program made for its thread, that thread (else null).</summary>
    readonly record struct Element(nint Value, TaskOwner? Task);

    readonly Dictionary<ulong, Element> _elements = [];
    readonly Lock _lock = new();
    readonly int _stride;

    internal LocalStorageMap(MapDefinition definition) : base(definition)
    {
        _stride = Native.Round8(ValueSize);
        if (Type == MapType.TaskStorage) TaskOwner.Track(this);
    }

    /// <summary>The number of owners that have a value.</summary>
    public int Count
    {
        get
        {
            lock (_lock) return _elements.Count;
        }
    }

    long Charge => ElementHeader + _stride;

    /// <summary>
    /// The storage_get helpers' work (__bpf_task_storage_get, cgroup_storage_get): the address of
    /// <paramref name="owner"/>'s value; without one, when <paramref name="create"/> is set, a new value, zeroed and then
    /// given <paramref name="init"/>'s bytes (but not its special fields) when it is not null; else 0. 0 as well when the
    /// element cannot be charged (the kernel's allocation failure).
    /// </summary>
    public ulong Get(ulong owner, byte* init, bool create)
    {
        // A task's owner is the calling thread (a program reaches only its own task's storage).
        var task = Type == MapType.TaskStorage ? TaskOwner.Current : null;
        lock (_lock)
        {
            if (_elements.TryGetValue(owner, out var e))
            {
                // An ended thread's value under a thread id this thread reuses is not this thread's.
                if (e.Task == null || e.Task == task) return (ulong)e.Value;
                _elements.Remove(owner);
                Retire(e.Value);
            }
            if (!create || !ChargeElement(Charge)) return 0;
            byte* fresh = Native.Alloc((nuint)_stride);
            if (init != null) BpfSpinLock.CopyValue(init, fresh, ValueSize, SpinLockOffset, locked: false, lockDestination: true, TimerOffset);
            _elements[owner] = new Element((nint)fresh, task?.Register());
            return (ulong)fresh;
        }
    }

    /// <summary>The storage_delete helpers' work (task_storage_delete): 0, or -ENOENT when <paramref name="owner"/> has no value.</summary>
    public int Remove(ulong owner)
    {
        lock (_lock)
        {
            if (!_elements.Remove(owner, out var e)) return -Errno.ENOENT;
            Retire(e.Value);
            return 0;
        }
    }

    /// <summary>Frees the value <paramref name="task"/>'s thread made, when it is still there (the thread has ended).</summary>
    internal void TaskExited(TaskOwner task)
    {
        lock (_lock)
        {
            if (IsDisposed || !_elements.TryGetValue((uint)task.ThreadId, out var e) || e.Task != task) return;
            _elements.Remove((uint)task.ThreadId);
            Retire(e.Value);
        }
    }

    void Retire(nint e)
    {
        MapEpoch.Retire((void*)e, this);
        UnchargeElement(Charge);
    }

    /// <summary>
    /// The owner a userspace key names (bpf_pid_task_storage_*_elem's pidfd, bpf_cgrp_storage_*_elem's cgroup fd): a
    /// thread id or a cgroup id; -EBADF for a key of 0 or below, -ENOENT for a thread id that is not a live thread of the
    /// host process.
    /// </summary>
    int Owner(byte* key, out ulong owner)
    {
        int id = *(int*)key;
        owner = (uint)id;
        if (id <= 0) return -Errno.EBADF;
        if (Type == MapType.TaskStorage && !IsHostThread(id))
        {
            // The thread has ended (its pidfd would name an exited task): its value goes now if the finaliser has not run yet.
            lock (_lock)
            {
                if (_elements.Remove(owner, out var e)) Retire(e.Value);
            }
            return -Errno.ENOENT;
        }
        return 0;
    }

    static bool IsHostThread(int tid) =>
        tid == KernelHelpers.CurrentTask.ThreadId() || (OperatingSystem.IsLinux() && Directory.Exists($"/proc/self/task/{tid}"));

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        int err = Owner(key, out ulong owner);
        if (err != 0) return err;
        lock (_lock)
        {
            if (!_elements.TryGetValue(owner, out var e)) return -Errno.ENOENT;
            BpfSpinLock.CopyValue((byte*)e.Value, value, ValueSize, SpinLockOffset, (flags & UpdateFlags.Lock) != 0, lockDestination: false, TimerOffset);
        }
        BpfSpinLock.ClearSpecialFields(value, SpinLockOffset, TimerOffset);
        return 0;
    }

    /// <summary>
    /// bpf_local_storage_update from userspace: BPF_ANY, BPF_NOEXIST (-EEXIST when there is a value), BPF_EXIST (-ENOENT
    /// when there is none), optionally BPF_F_LOCK, which on an existing value copies into it under its lock; other flags
    /// -EINVAL. Otherwise a new element replaces the old one.
    /// </summary>
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        ulong mode = flags & ~UpdateFlags.Lock;
        bool locked = (flags & UpdateFlags.Lock) != 0;
        int err = Owner(key, out ulong owner);
        if (err != 0) return err;
        if (mode > UpdateFlags.Exist) return -Errno.EINVAL;
        lock (_lock)
        {
            bool present = _elements.TryGetValue(owner, out var old);
            if (present && mode == UpdateFlags.NoExist) return -Errno.EEXIST;
            if (!present && mode == UpdateFlags.Exist) return -Errno.ENOENT;
            if (present && locked)
            {
                BpfSpinLock.CopyValue(value, (byte*)old.Value, ValueSize, SpinLockOffset, locked: true, lockDestination: true, TimerOffset);
                return 0;
            }
            if (!ChargeElement(Charge)) return -Errno.ENOMEM;
            byte* fresh = Native.Alloc((nuint)_stride);
            BpfSpinLock.CopyValue(value, fresh, ValueSize, SpinLockOffset, locked: false, lockDestination: true, TimerOffset);
            // The calling thread's own value stays tied to it; another thread's (userspace names it by id) is not tracked.
            var task = Type == MapType.TaskStorage && owner == (uint)KernelHelpers.CurrentTask.ThreadId() ? TaskOwner.Current.Register() : old.Task;
            _elements[owner] = new Element((nint)fresh, task);
            if (present) Retire(old.Value);
            return 0;
        }
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key)
    {
        int err = Owner(key, out ulong owner);
        return err != 0 ? err : Remove(owner);
    }

    /// <summary>-ENOTSUPP: local storage has no key order (the kernel's notsupp_get_next_key).</summary>
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => -Errno.ENOTSUPP;

    /// <inheritdoc />
    internal override bool FindValue(ulong address, out ulong start, out int length)
    {
        start = 0;
        length = 0;
        lock (_lock)
        {
            foreach (var e in _elements.Values)
                if (Better(address, (ulong)e.Value, ValueSize, ref start, ref length)) return true;
        }
        foreach (nint e in MapEpoch.PendingOf(this))
            if (Better(address, (ulong)e, ValueSize, ref start, ref length)) return true;
        return length != 0;
    }

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        lock (_lock)
        {
            foreach (var e in _elements.Values) Native.Free((void*)e.Value);
            _elements.Clear();
        }
    }
}
