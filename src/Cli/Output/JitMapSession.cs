using System.Diagnostics.Tracing;
using System.Runtime.CompilerServices;
using BpfJit.IlEmitter;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;

namespace BpfJit.Cli.Output;

/// <summary>
/// Compiles a program's <see cref="NativeTwin"/> under an EventPipe session that this process opens on itself
/// through the diagnostics IPC, and returns what the runtime published about the compile: the code's address and
/// size (MethodLoadVerbose) and its IL-to-native map (MethodILToNativeMap). An in-process EventListener is not
/// enough: its payload of MethodILToNativeMap lacks the offset arrays (docs/il-dump.md, "Machine code").
/// </summary>
public static class JitMapSession
{
    /// <summary>Microsoft-Windows-DotNETRuntime keywords: JitKeyword (MethodLoadVerbose) and JittedMethodILToNativeMapKeyword.</summary>
    const long Keywords = 0x10 | 0x20000;

    /// <summary>The twin's compiled code as the runtime published it.</summary>
    /// <param name="Address">The code's start in this process.</param>
    /// <param name="Size">The code's size in bytes (hot code: the JIT puts no cold code apart for these methods).</param>
    /// <param name="Map">The map's entries in the order sent: IL offset (or <see cref="NativeSlotMap.Prolog"/>,
    /// <see cref="NativeSlotMap.Epilog"/>, <see cref="NativeSlotMap.NoMapping"/>) and the native offset it starts at.</param>
    public sealed record Result(nint Address, int Size, IReadOnlyList<(int IlOffset, int NativeOffset)> Map);

    /// <summary>Compiles <paramref name="twin"/> under a session; returns null with <paramref name="reason"/> when no session could be had.</summary>
    public static Result? Compile(NativeTwin twin, out string reason)
    {
        ArgumentNullException.ThrowIfNull(twin);
        long id = twin.Method.MethodHandle.Value;   // MethodID in the runtime's events is the MethodDesc
        EventPipeSession session;
        try
        {
            var client = new DiagnosticsClient(Environment.ProcessId);
            session = client.StartEventPipeSession(
                [new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Verbose, Keywords)], requestRundown: false, circularBufferMB: 16);
        }
        catch (Exception e) when (e is ServerNotAvailableException or UnsupportedCommandException or ServerErrorException or TimeoutException or IOException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            reason = Environment.GetEnvironmentVariable("DOTNET_EnableDiagnostics") == "0"
                ? "no EventPipe session: DOTNET_EnableDiagnostics=0 turns off the diagnostics IPC"
                : $"no EventPipe session on this process's diagnostics IPC ({e.GetType().Name}: {e.Message})";
            return null;
        }
        var map = new List<(int, int)>();
        nint address = 0;
        int size = 0;
        using (session)
        {
            var reader = Task.Run(() =>
            {
                using var source = new EventPipeEventSource(session.EventStream);
                source.Clr.MethodLoadVerbose += e => { if (e.MethodID == id) { address = (nint)e.MethodStartAddress; size = e.MethodSize; } };
                source.Clr.MethodILToNativeMap += e =>
                {
                    if (e.MethodID != id) return;
                    map.Clear();
                    for (int i = 0; i < e.CountOfMapEntries; i++) map.Add((e.ILOffset(i), e.NativeOffset(i)));
                };
                source.Process();
            });
            RuntimeHelpers.PrepareMethod(twin.Method.MethodHandle);
            session.Stop();
            if (!reader.Wait(TimeSpan.FromSeconds(30)))
            {
                reason = "the EventPipe session did not end within 30 s";
                return null;
            }
        }
        if (address == 0 || map.Count == 0)
        {
            reason = address == 0 ? "the runtime sent no MethodLoadVerbose event for the compiled method" : "the runtime sent no MethodILToNativeMap event for the compiled method";
            return null;
        }
        reason = "";
        return new Result(address, size, map);
    }
}
