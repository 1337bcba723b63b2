using System.Buffers.Binary;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.Scenarios;

/// <summary>How many checks of a scenario passed and failed.</summary>
public readonly record struct ScenarioOutcome(int Passed, int Failed);

/// <summary>
/// Runs a scenario's steps in order and prints one line per step: lookups as
/// <c>tcp 127.0.0.2:8008 -&gt; 127.0.0.1:7007: socket A</c>, prefixed with PASS or FAIL when the
/// step states an expectation, and a closing <c>N passed, N failed</c>.
/// </summary>
public static class ScenarioRunner
{
    /// <summary>Builds and runs <paramref name="file"/>; throws <see cref="ScenarioException"/> for a bad file.</summary>
    public static ScenarioOutcome RunFile(string file, IBpfEngine engine, TextWriter output)
    {
        using var env = ScenarioBuilder.Build(file, engine);
        return Run(env, output);
    }

    /// <summary>The symbolic name of an errno (either sign).</summary>
    public static string ErrnoName(long code) => Runtime.Errno.Name(code);

    /// <summary>Runs every step of <paramref name="env"/>, writing a line per step.</summary>
    public static ScenarioOutcome Run(ScenarioEnvironment env, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(output);
        int passed = 0, failed = 0;
        void Report(string line, bool? ok, string? expected = null)
        {
            if (ok == null) { output.WriteLine(line); return; }
            if (ok.Value) passed++; else failed++;
            output.WriteLine(ok.Value ? $"PASS {line}" : $"FAIL {line} (expected {expected})");
        }

        foreach (var step in env.Steps)
        {
            switch (step)
            {
                case LookupStep l:
                    {
                        var r = env.Namespace.Lookup(l.Packet);
                        string got = Describe(env, r.Outcome, r.Socket);
                        Report($"{l.Packet}: {got}", l.Expect == null ? null : got == ExpectText(l.Expect), ExpectText(l.Expect));
                        break;
                    }
                case TestRunStep t:
                    {
                        var result = SkLookupTestRun.Run(env.Programs[t.Program], TestRunRequest.WithContext(Context(t.Packet)));
                        string got;
                        bool? ok = null;
                        var want = new List<string>();
                        if (result.Error != 0)
                        {
                            got = $"error {ErrnoName(result.Error)}";
                        }
                        else
                        {
                            var sock = env.Sockets.Values.FirstOrDefault(s => s.Cookie == result.Cookie && result.Cookie != 0);
                            string sel = result.Cookie == 0 ? "none" : sock != null ? $"socket {env.NameOf(sock)}" : $"cookie {result.Cookie}";
                            got = $"retval {result.Retval}, {sel}";
                        }
                        if (t.Error != null) { want.Add($"error {t.Error}"); ok = got == $"error {t.Error}"; }
                        else
                        {
                            if (t.Retval is { } rv) { want.Add($"retval {rv}"); ok = result.Error == 0 && result.Retval == rv; }
                            if (t.Expect != null)
                            {
                                string e = t.Expect == "none" ? "none" : $"socket {t.Expect}";
                                want.Add(e);
                                ok = (ok ?? true) && result.Error == 0 && got.EndsWith(", " + e, StringComparison.Ordinal);
                            }
                        }
                        Report($"test_run {t.Program} {t.Packet}: {got}", ok, string.Join(", ", want));
                        break;
                    }
                case UpdateStep u:
                    {
                        var map = env.Maps[u.Map];
                        int err = u.Socket != null
                            ? ScenarioBuilder.UpdateSocket(map, u.Key, env.Sockets[u.Socket], u.Flags)
                            : map.Update(u.Key, u.Value!, u.Flags);
                        string what = u.Socket != null ? $"socket {u.Socket}" : Hex(u.Value![..map.ValueSize]);
                        Outcome($"update {u.Map}[{KeyText(map, u.Key)}] = {what}", err, u.ExpectError);
                        break;
                    }
                case DeleteStep d:
                    {
                        var map = env.Maps[d.Map];
                        Outcome($"delete {d.Map}[{KeyText(map, d.Key)}]", map.Delete(d.Key), d.ExpectError);
                        break;
                    }
                case CheckStep c:
                    {
                        var map = env.Maps[c.Map];
                        string got = Read(env, map, c.Key);
                        string want = c.Absent ? "absent" : c.Socket != null ? $"socket {c.Socket}" : Hex(c.Value!);
                        Report($"check {c.Map}[{KeyText(map, c.Key)}]: {got}", got == want, want);
                        break;
                    }
                case CloseStep s:
                    env.Sockets[s.Socket].Close();
                    Report($"close {s.Socket}", null);
                    break;
                case AttachStep a:
                    {
                        try
                        {
                            var link = env.Namespace.SkLookup.Attach(env.Programs[a.Program]);
                            Report($"attach {a.Program}: link {link.Id}", null);
                        }
                        catch (SocketErrorException e)
                        {
                            Report($"attach {a.Program}: {ErrnoName(e.Errno)}", false, "success");
                        }
                        break;
                    }
                case DetachStep dt:
                    {
                        var links = env.Namespace.SkLookup.Links;
                        if (dt.Index >= links.Count) { Report($"detach link {dt.Index}: no such link", false, $"at most {links.Count - 1}"); break; }
                        var link = links[dt.Index];
                        link.Detach();
                        Report($"detach link {dt.Index} ({link.Program.Name}): netns_ino {link.NetnsInode}", null);
                        break;
                    }
                case ReplaceStep rp:
                    {
                        var links = env.Namespace.SkLookup.Links;
                        if (rp.Index >= links.Count) { Report($"replace link {rp.Index}: no such link", false, $"at most {links.Count - 1}"); break; }
                        links[rp.Index].Update(env.Programs[rp.Program]);
                        Report($"replace link {rp.Index} with {rp.Program}", null);
                        break;
                    }
                case QueryStep q:
                    {
                        var ids = env.Namespace.SkLookup.Query();
                        var byId = env.Programs.Values.ToDictionary(p => p.Id, p => p.Name);
                        string got = string.Join(", ", ids.Select(i => byId.GetValueOrDefault(i, $"#{i}")));
                        string want = string.Join(", ", q.Programs);
                        Report($"query: [{got}]", got == want, $"[{want}]");
                        break;
                    }
            }
        }
        output.WriteLine($"{passed} passed, {failed} failed");
        return new ScenarioOutcome(passed, failed);

        void Outcome(string line, int err, string? expectError)
        {
            string got = err == 0 ? "ok" : ErrnoName(err);
            if (expectError == null)
            {
                if (err == 0) Report($"{line}: ok", null);
                else Report($"{line}: {got}", false, "ok");
            }
            else
            {
                string want = expectError == "0" ? "ok" : expectError;
                Report($"{line}: {got}", got == want, want);
            }
        }
    }

    static string ExpectText(string? expect) => expect is null or "refused" or "none" ? expect ?? "" : $"socket {expect}";

    static string Describe(ScenarioEnvironment env, LookupOutcome outcome, Sock? s) => outcome switch
    {
        LookupOutcome.Socket => $"socket {env.NameOf(s!)}",
        LookupOutcome.Refused => "refused",
        _ => "none",
    };

    static string Hex(byte[] b) => "hex:" + Convert.ToHexString(b).ToLowerInvariant();

    static string KeyText(BpfMap map, byte[] key) =>
        key.Length == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(key).ToString(System.Globalization.CultureInfo.InvariantCulture) : Hex(key);

    // A map element as a check compares it: a socket name, the (per-CPU summed) value, or "absent".
    static string Read(ScenarioEnvironment env, BpfMap map, byte[] key)
    {
        if (map is SockMap sm) return sm.Get(BinaryPrimitives.ReadUInt32LittleEndian(key)) is { } s ? $"socket {env.NameOf(s)}" : "absent";
        if (map is SockHash sh) return sh.Get(key) is { } s2 ? $"socket {env.NameOf(s2)}" : "absent";
        var value = new byte[map.UserValueSize];
        if (map.Lookup(key, value) != 0) return "absent";
        if (map.UserValueSize == map.ValueSize) return Hex(value);
        int stride = map.UserValueSize / Cpu.Count;
        var sum = new byte[map.ValueSize];
        if (map.ValueSize % 8 == 0)
        {
            for (int w = 0; w < map.ValueSize; w += 8)
            {
                ulong total = 0;
                for (int cpu = 0; cpu < Cpu.Count; cpu++) total += BinaryPrimitives.ReadUInt64LittleEndian(value.AsSpan(cpu * stride + w));
                BinaryPrimitives.WriteUInt64LittleEndian(sum.AsSpan(w), total);
            }
        }
        else
        {
            for (int i = 0; i < map.ValueSize; i++)
            {
                int total = 0;
                for (int cpu = 0; cpu < Cpu.Count; cpu++) total += value[cpu * stride + i];
                sum[i] = (byte)total;
            }
        }
        return Hex(sum);
    }

    /// <summary>The 72-byte test-run context a packet gives (ingress_ifindex 0, as test runs require).</summary>
    public static byte[] Context(in Packet p)
    {
        var b = new byte[SkLookupLayout.Size];
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(SkLookupLayout.Family), (uint)p.Family);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(SkLookupLayout.Protocol), (uint)p.Protocol);
        if (p.Family == SocketFamily.Inet)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(SkLookupLayout.RemoteIp4), p.From.Address.Ip4Raw);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(SkLookupLayout.LocalIp4), p.To.Address.Ip4Raw);
        }
        else
        {
            p.From.Address.WriteBytes(b.AsSpan(SkLookupLayout.RemoteIp6, 16));
            p.To.Address.WriteBytes(b.AsSpan(SkLookupLayout.LocalIp6, 16));
        }
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(SkLookupLayout.RemotePort), p.From.Port);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(SkLookupLayout.LocalPort), p.To.Port);
        return b;
    }
}
