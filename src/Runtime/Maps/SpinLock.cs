using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// struct bpf_spin_lock: a 4-byte word inside a map value, 0 when free and 1 when held. Programs take it
/// with bpf_spin_lock/bpf_spin_unlock; userspace takes it for BPF_F_LOCK lookups and updates.
/// </summary>
public static unsafe class BpfSpinLock
{
    /// <summary>Size of the lock word.</summary>
    public const int Size = 4;

    /// <summary>Takes the lock at <paramref name="address"/>, spinning (then yielding) while another holder has it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Lock(void* address)
    {
        ref int word = ref Unsafe.AsRef<int>(address);
        if (Interlocked.CompareExchange(ref word, 1, 0) != 0) Contended(ref word);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Contended(ref int word)
    {
        var spin = new SpinWait();
        do spin.SpinOnce();
        while (Volatile.Read(ref word) != 0 || Interlocked.CompareExchange(ref word, 1, 0) != 0);
    }

    /// <summary>Releases the lock at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unlock(void* address) => Volatile.Write(ref Unsafe.AsRef<int>(address), 0);

    /// <summary>
    /// Copies a map value like the kernel's copy_map_value(_locked): every byte except the special fields (the lock
    /// word, and the bpf_timer at <paramref name="timerOffset"/> when there is one), under the destination's (or
    /// source's) lock when <paramref name="locked"/> is set.
    /// </summary>
    internal static void CopyValue(byte* from, byte* to, int size, int lockOffset, bool locked, bool lockDestination, int timerOffset = -1)
    {
        if (lockOffset < 0 && timerOffset < 0)
        {
            Native.Copy(from, to, size);
            return;
        }
        byte* lockWord = lockOffset < 0 ? null : (lockDestination ? to : from) + lockOffset;
        if (locked && lockWord != null) Lock(lockWord);
        // The special fields in offset order, each skipped.
        (int Off, int Len) a = (lockOffset, Size), b = (timerOffset, BpfTimers.Size);
        if (a.Off < 0 || (b.Off >= 0 && b.Off < a.Off)) (a, b) = (b, a);
        int pos = Skip(from, to, 0, a.Off, a.Len);
        pos = Skip(from, to, pos, b.Off, b.Len);
        Native.Copy(from + pos, to + pos, size - pos);
        if (locked && lockWord != null) Unlock(lockWord);
    }

    // Copies the bytes from pos up to a field at off (none when off is -1) and returns where copying resumes.
    static int Skip(byte* from, byte* to, int pos, int off, int len)
    {
        if (off < 0) return pos;
        Native.Copy(from + pos, to + pos, off - pos);
        return off + len;
    }

    /// <summary>Clears the special fields of a value copied out to userspace (the kernel's check_and_init_map_value).</summary>
    internal static void ClearSpecialFields(byte* value, int lockOffset, int timerOffset)
    {
        if (lockOffset >= 0) *(int*)(value + lockOffset) = 0;
        if (timerOffset >= 0) System.Runtime.InteropServices.NativeMemory.Clear(value + timerOffset, BpfTimers.Size);
    }
}
