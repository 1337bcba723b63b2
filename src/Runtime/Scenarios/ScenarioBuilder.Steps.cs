using System.Buffers.Binary;
using System.Text.Json;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.Scenarios;

public sealed partial class ScenarioBuilder
{
    static readonly string[] s_lookupFields = ["proto", "from", "to", "ifindex", "payload", "expect"];

    BpfMap MapNamed(JNode node)
    {
        string name = node.Str();
        return _env.Maps.TryGetValue(name, out var m) ? m : throw node.Error($"unknown map '{name}'");
    }

    /// <summary>The bytes a userspace value takes: for per-CPU maps the value goes to CPU 0 and the others are zero.</summary>
    static byte[] UserValue(BpfMap map, JNode node)
    {
        var one = node.Bytes(map.ValueSize, "value");
        if (map.UserValueSize == map.ValueSize) return one;
        var all = new byte[map.UserValueSize];
        one.CopyTo(all, 0);
        return all;
    }

    (byte[] Key, byte[]? Value, string? Socket) Entry(BpfMap map, JNode node, bool valueRequired)
    {
        var key = node.Req("key").Bytes(map.KeySize, "key");
        bool socketMap = map is SocketMapBase;
        if (node.Opt("socket") is { } sn)
        {
            if (!socketMap) throw sn.Error($"map '{map.Name}' does not hold sockets");
            return (key, null, SocketNamed(sn).Name);
        }
        if (node.Opt("value") is { } v)
        {
            if (socketMap && v.Element.ValueKind == JsonValueKind.String && !v.Str().StartsWith("hex:", StringComparison.Ordinal))
                return (key, null, SocketNamed(v).Name);
            if (socketMap) throw v.Error($"a value of socket map '{map.Name}' names a socket");
            return (key, UserValue(map, v), null);
        }
        if (valueRequired) throw node.Error(socketMap ? "missing field 'socket'" : "missing field 'value'");
        return (key, null, null);
    }

    void FillMaps(JNode maps)
    {
        foreach (var (name, entries) in maps.Fields())
        {
            if (!_env.Maps.TryGetValue(name, out var map)) throw entries.Error($"unknown map '{name}'");
            foreach (var item in entries.Items())
            {
                item.Object("key", "value", "socket", "cgroup");
                if (item.Opt("cgroup") is { } cg)
                {
                    FillCgroup(map, item, cg);
                    continue;
                }
                var (key, value, socket) = Entry(map, item, valueRequired: true);
                int err = socket != null
                    ? UpdateSocket(map, key, _env.Sockets[socket], UpdateFlags.Any)
                    : map.Update(key, value!);
                if (err != 0) throw item.Error($"update failed: {ScenarioRunner.ErrnoName(err)}");
            }
        }
    }

    /// <summary>A CGROUP_ARRAY slot from <c>"cgroup"</c>: a directory of a cgroup v2 mount, or a cgroup id (a number).</summary>
    static void FillCgroup(BpfMap map, JNode item, JNode cg)
    {
        if (map is not CgroupArrayMap cgroups) throw cg.Error($"map '{map.Name}' does not hold cgroups (a CGROUP_ARRAY does)");
        if ((item.Opt("value") ?? item.Opt("socket")) is { } other) throw other.Error("an entry with 'cgroup' takes no 'value' or 'socket'");
        uint index = BinaryPrimitives.ReadUInt32LittleEndian(item.Req("key").Bytes(4, "key"));
        string name = cg.Element.ValueKind == JsonValueKind.Number
            ? (cg.Element.TryGetUInt64(out ulong id) ? id.ToString(System.Globalization.CultureInfo.InvariantCulture) : throw cg.Error("a cgroup id must be a u64"))
            : cg.Str();
        int err = cgroups.SetCgroupByName(index, name);
        if (err < 0) throw cg.Error(CgroupArrayMap.SetCgroupError(map.Name, index, name, err));
    }

    internal static int UpdateSocket(BpfMap map, byte[] key, Sock socket, ulong flags)
    {
        var value = new byte[map.ValueSize];
        if (map.ValueSize == 8) BinaryPrimitives.WriteUInt64LittleEndian(value, socket.Cookie);
        else BinaryPrimitives.WriteUInt32LittleEndian(value, checked((uint)socket.Cookie));
        return map.Update(key, value, flags);
    }

    Packet ParsePacket(JNode node, bool withIfindex)
    {
        var proto = Proto(node.Req("proto"));
        var from = EndPoint(node.Req("from"));
        var to = EndPoint(node.Req("to"));
        if (from.Family != to.Family) throw node.Req("to").Error($"'from' is {from.Family} but 'to' is {to.Family}");
        int ifindex = withIfindex ? (int)(node.Opt("ifindex")?.Int(0, int.MaxValue) ?? 1) : 0;
        var packet = new Packet(proto, from, to, ifindex);
        return node.Opt("payload") is { } payload ? packet.WithPayload(Payload(payload)) : packet;
    }

    // "payload": "hex:..." — the bytes after the stand-in TCP or UDP header (Packet.WithPayload).
    static byte[] Payload(JNode node)
    {
        string text = node.Str();
        if (!node.IsHex) throw node.Error($"'payload' must be a 'hex:' string, not '{text}'");
        byte[] bytes = node.Hex();
        return bytes.Length <= Packet.MaxPayload ? bytes : throw node.Error($"'payload' has {bytes.Length} bytes; at most {Packet.MaxPayload} fit in a packet");
    }

    string? Expect(JNode node)
    {
        if (node.Opt("expect") is not { } e) return null;
        string v = e.Str();
        if (v is "refused" or "none") return v;
        return SocketNamed(e).Name;
    }

    static string? ErrnoName(JNode node)
    {
        string s = node.Str();
        if (s == "0") return s;
        if (ErrnoByName(s) == 0) throw node.Error($"unknown errno name '{s}'");
        return s;
    }

    static int ErrnoByName(string name)
    {
        for (int i = 1; i < 600; i++) if (ScenarioRunner.ErrnoName(i) == name) return i;
        return 0;
    }

    ScenarioStep ParseStep(JNode node)
    {
        if (node.Has("test_run"))
        {
            node.Object("test_run", "proto", "from", "to", "payload", "expect", "retval", "error");
            var p = node.Req("test_run");
            Program(p);
            return new TestRunStep(node.Path, p.Str(), ParsePacket(node, withIfindex: false), Expect(node),
                node.Opt("retval") is { } r ? (uint)r.Int(0, uint.MaxValue) : null, node.Opt("error") is { } e ? ErrnoName(e) : null);
        }
        if (node.Has("update"))
        {
            node.Object("update", "key", "value", "socket", "flags", "expect_error");
            var map = MapNamed(node.Req("update"));
            var (key, value, socket) = Entry(map, node, valueRequired: true);
            ulong flags = node.Opt("flags") is { } f
                ? f.Element.ValueKind == JsonValueKind.Number ? (ulong)f.Int(0) : f.Choice("any", "noexist", "exist") switch { "any" => 0UL, "noexist" => 1UL, _ => 2UL }
                : 0;
            return new UpdateStep(node.Path, map.Name, key, value, socket, flags, node.Opt("expect_error") is { } x ? ErrnoName(x) : null);
        }
        if (node.Has("delete"))
        {
            node.Object("delete", "key", "expect_error");
            var map = MapNamed(node.Req("delete"));
            return new DeleteStep(node.Path, map.Name, node.Req("key").Bytes(map.KeySize, "key"), node.Opt("expect_error") is { } x ? ErrnoName(x) : null);
        }
        if (node.Has("check"))
        {
            node.Object("check", "key", "value", "socket", "absent");
            var map = MapNamed(node.Req("check"));
            bool absent = node.Opt("absent")?.Bool() ?? false;
            var key = node.Req("key").Bytes(map.KeySize, "key");
            if (absent) return new CheckStep(node.Path, map.Name, key, null, null, true);
            if (node.Opt("value") is { } v && map is not SocketMapBase) return new CheckStep(node.Path, map.Name, key, v.Bytes(map.ValueSize, "value"), null, false);
            var (_, _, socket) = Entry(map, node, valueRequired: true);
            return new CheckStep(node.Path, map.Name, key, null, socket, false);
        }
        if (node.Has("close"))
        {
            node.Object("close");
            return new CloseStep(node.Path, SocketNamed(node.Req("close")).Name!);
        }
        if (node.Has("attach"))
        {
            node.Object("attach");
            return new AttachStep(node.Path, Program(node.Req("attach")).Name);
        }
        if (node.Has("detach"))
        {
            node.Object("detach");
            return new DetachStep(node.Path, (int)node.Req("detach").Int(0, SkLookupHook.MaxLinks - 1));
        }
        if (node.Has("replace"))
        {
            node.Object("replace", "program");
            return new ReplaceStep(node.Path, (int)node.Req("replace").Int(0, SkLookupHook.MaxLinks - 1), Program(node.Req("program")).Name);
        }
        if (node.Has("query"))
        {
            node.Object("query");
            return new QueryStep(node.Path, node.Req("query").Items().Select(i => Program(i).Name).ToArray());
        }
        node.Object(s_lookupFields);
        return new LookupStep(node.Path, ParsePacket(node, withIfindex: true), Expect(node));
    }
}
