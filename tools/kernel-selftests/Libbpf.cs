using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace BpfJit.KernelSelftests;

/// <summary>
/// The kernel's side of the comparison: libbpf opens the object, creates its maps, resolves its
/// relocations (maps, global data, subprograms, CO-RE, kfuncs) and loads one program with
/// BPF_PROG_LOAD as SK_LOOKUP, the way the selftests' own loader does. The library is the one
/// <c>BPFJIT_LIBBPF</c> names (run.sh builds the source tree's own libbpf), else the system's
/// <c>libbpf.so.1</c>.
/// </summary>
public static unsafe class Libbpf
{
    const string Lib = "libbpf";
    const int ProgTypeSkLookup = 30, AttachSkLookup = 36;
    const int LogSize = 1 << 22;

    static Libbpf()
    {
        NativeLibrary.SetDllImportResolver(typeof(Libbpf).Assembly, Resolve);
    }

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Lib) return IntPtr.Zero;
        string? explicitPath = Environment.GetEnvironmentVariable("BPFJIT_LIBBPF");
        if (!string.IsNullOrEmpty(explicitPath)) return NativeLibrary.Load(explicitPath);
        return NativeLibrary.TryLoad("libbpf.so.1", out var h) ? h : NativeLibrary.Load("libbpf.so");
    }

    [DllImport(Lib, SetLastError = true)] static extern IntPtr bpf_object__open_file(byte* path, IntPtr opts);
    [DllImport(Lib)] static extern int bpf_object__load(IntPtr obj);
    [DllImport(Lib)] static extern void bpf_object__close(IntPtr obj);
    [DllImport(Lib)] static extern IntPtr bpf_object__next_program(IntPtr obj, IntPtr prev);
    [DllImport(Lib)] static extern IntPtr bpf_program__name(IntPtr prog);
    [DllImport(Lib)] static extern IntPtr bpf_program__section_name(IntPtr prog);
    [DllImport(Lib)] static extern int bpf_program__set_autoload(IntPtr prog, byte autoload);
    [DllImport(Lib)] static extern int bpf_program__set_type(IntPtr prog, int type);
    [DllImport(Lib)] static extern int bpf_program__set_expected_attach_type(IntPtr prog, int type);
    [DllImport(Lib)] static extern int bpf_program__set_flags(IntPtr prog, uint flags);
    [DllImport(Lib)] static extern int bpf_program__set_log_level(IntPtr prog, uint level);
    [DllImport(Lib)] static extern int bpf_program__set_log_buf(IntPtr prog, byte* buf, nuint size);
    [DllImport(Lib)] static extern IntPtr libbpf_set_print(delegate* unmanaged<int, byte*, IntPtr, int> fn);
    [DllImport("libc")] static extern int vsnprintf(byte* buf, nuint size, byte* fmt, IntPtr args);

    // libbpf's own messages (why a map could not be created, a relocation failed, ...) of the current load.
    [ThreadStatic] static StringBuilder? t_messages;
    static readonly Lazy<(bool Ok, string Reason)> s_available = new(Probe);

    /// <summary>True when libbpf can be loaded in this process.</summary>
    public static bool Available => s_available.Value.Ok;

    /// <summary>Why <see cref="Available"/> is false (empty when it is true).</summary>
    public static string UnavailableReason => s_available.Value.Reason;

    static (bool, string) Probe()
    {
        if (!OperatingSystem.IsLinux()) return (false, "not Linux");
        try
        {
            libbpf_set_print(&Print);
            return (true, "");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return (false, "libbpf not found (install libbpf1 or set BPFJIT_LIBBPF): " + e.Message);
        }
    }

    [UnmanagedCallersOnly]
    static int Print(int level, byte* fmt, IntPtr args)
    {
        // level 2 is LIBBPF_DEBUG: feature probes and the like, not a reason.
        if (level >= 2 || t_messages == null) return 0;
        var buf = stackalloc byte[1024];
        int n = vsnprintf(buf, 1024, fmt, args);
        if (n > 0) t_messages.Append(Encoding.UTF8.GetString(buf, Math.Min(n, 1023)));
        return 0;
    }

    /// <summary>The programs of an object as libbpf sees them (name, section), or an error from opening it.</summary>
    public static (IReadOnlyList<(string Name, string Section)> Programs, string? Error) ListPrograms(string path)
    {
        if (!Available) return ([], UnavailableReason);
        t_messages = new StringBuilder();
        var obj = Open(path);
        try
        {
            if (obj == IntPtr.Zero) return ([], OpenError());
            var list = new List<(string, string)>();
            for (var p = bpf_object__next_program(obj, IntPtr.Zero); p != IntPtr.Zero; p = bpf_object__next_program(obj, p))
                list.Add((Marshal.PtrToStringUTF8(bpf_program__name(p)) ?? "", Marshal.PtrToStringUTF8(bpf_program__section_name(p)) ?? ""));
            return (list, null);
        }
        finally
        {
            if (obj != IntPtr.Zero) bpf_object__close(obj);
            t_messages = null;
        }
    }

    /// <summary>
    /// Loads program <paramref name="name"/> of the object alone (every other program's autoload off)
    /// as SK_LOOKUP with log level 1, then closes everything.
    /// </summary>
    public static KernelVerdict Load(string path, string name) => Load(path, name, ProgTypeSkLookup, AttachSkLookup);

    /// <summary>
    /// Loads program <paramref name="name"/> alone as program type <paramref name="progType"/> with expected attach type
    /// <paramref name="attachType"/> (the type BpfJit verifies it as), log level 1, then closes everything.
    /// </summary>
    public static KernelVerdict Load(string path, string name, int progType, int attachType)
    {
        if (!Available) return new KernelVerdict(KernelOutcome.NotLoaded, 0, "", UnavailableReason);
        t_messages = new StringBuilder();
        var log = new byte[LogSize];
        var obj = Open(path);
        try
        {
            if (obj == IntPtr.Zero) return new KernelVerdict(KernelOutcome.NotLoaded, 0, "", OpenError());
            bool found = false;
            for (var p = bpf_object__next_program(obj, IntPtr.Zero); p != IntPtr.Zero; p = bpf_object__next_program(obj, p))
            {
                bool mine = Marshal.PtrToStringUTF8(bpf_program__name(p)) == name;
                bpf_program__set_autoload(p, mine ? (byte)1 : (byte)0);
                if (!mine) continue;
                found = true;
                bpf_program__set_type(p, progType);
                bpf_program__set_expected_attach_type(p, attachType);
                bpf_program__set_flags(p, 0); // no sleepable / frags flags from the original section
                bpf_program__set_log_level(p, 1);
            }
            if (!found) return new KernelVerdict(KernelOutcome.NotLoaded, 0, "", $"libbpf has no program '{name}'");
            fixed (byte* lg = log)
            {
                for (var p = bpf_object__next_program(obj, IntPtr.Zero); p != IntPtr.Zero; p = bpf_object__next_program(obj, p))
                    if (Marshal.PtrToStringUTF8(bpf_program__name(p)) == name) bpf_program__set_log_buf(p, lg, LogSize);
                int err = bpf_object__load(obj);
                int len = Array.IndexOf(log, (byte)0);
                string text = Encoding.UTF8.GetString(log, 0, len < 0 ? log.Length : len);
                string messages = t_messages.ToString();
                if (err == 0) return new KernelVerdict(KernelOutcome.Accepted, 0, text, "");
                // libbpf fills a PROG_ARRAY's initial slots after every program is loaded; with only this program
                // loaded, a slot naming another one fails (EBADF). The kernel accepted this program already.
                if (messages.Contains("failed to initialize slot", StringComparison.Ordinal))
                    return new KernelVerdict(KernelOutcome.Accepted, 0, text, messages.Trim());
                // A verifier log, or libbpf reporting BPF_PROG_LOAD's failure, is the kernel's refusal;
                // anything else failed before the program reached the kernel (maps, relocations).
                bool kernel = text.Length > 0 || messages.Contains("BPF program load failed", StringComparison.Ordinal);
                return new KernelVerdict(kernel ? KernelOutcome.Rejected : KernelOutcome.NotLoaded, -err, text, messages.Trim());
            }
        }
        finally
        {
            if (obj != IntPtr.Zero) bpf_object__close(obj);
            t_messages = null;
        }
    }

    static IntPtr Open(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes) return bpf_object__open_file(p, IntPtr.Zero);
    }

    static string OpenError() =>
        $"libbpf cannot open the object (errno {Marshal.GetLastPInvokeError()}): {t_messages?.ToString().Trim()}";
}

/// <summary>What happened to a program on the kernel's side.</summary>
public enum KernelOutcome
{
    /// <summary>BPF_PROG_LOAD succeeded.</summary>
    Accepted,
    /// <summary>BPF_PROG_LOAD failed: the verifier (or the kernel's checks before it) refused the program.</summary>
    Rejected,
    /// <summary>libbpf failed before BPF_PROG_LOAD (open, map creation, relocation): no verdict.</summary>
    NotLoaded,
}

/// <summary>The kernel's answer for one program: outcome, errno, verifier log and libbpf's messages.</summary>
public sealed record KernelVerdict(KernelOutcome Outcome, int Errno, string Log, string Messages)
{
    /// <summary>The last <paramref name="count"/> non-empty lines of the verifier log (or libbpf's messages without a log).</summary>
    public IReadOnlyList<string> LastLines(int count)
    {
        var source = Log.Length > 0 ? Log : Messages;
        var lines = source.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("processed ", StringComparison.Ordinal) && !l.StartsWith("verification time", StringComparison.Ordinal)
                && !l.StartsWith("stack depth", StringComparison.Ordinal))
            .ToList();
        return lines.Skip(Math.Max(0, lines.Count - count)).ToList();
    }
}
