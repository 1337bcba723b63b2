using BpfJit.Frontend;
using System.Text;

namespace BpfJit.Verifier;

/// <summary>Prints states in the kernel's notation: <c>R1=ctx() R10=fp0 fp-8=mmmmmmmm</c>.</summary>
internal static class StateFormatter
{
    public static string TypeName(in RegState r) => RegTypeNames.Name(r.Type);

    public static string Format(VerifierState st, IReadOnlyList<MapInfo> maps)
    {
        var sb = new StringBuilder();
        for (int f = 0; f < st.Frames.Count; f++)
        {
            var frame = st.Frames[f];
            if (st.Frames.Count > 1) sb.Append(f == st.CurFrame ? "" : $"frame{f}: ");
            for (int r = 0; r <= BpfAbi.MaxRegister; r++)
            {
                var reg = frame.Regs[r];
                if (reg.Type == RegType.NotInit) continue;
                if (sb.Length > 0 && sb[^1] != ' ') sb.Append(' ');
                sb.Append('R').Append(r).Append('=').Append(Reg(reg, maps));
            }
            for (int spi = 0; spi < frame.Stack.Allocated / 8; spi++)
            {
                string kinds = frame.Stack.SlotString(spi);
                if (kinds == "????????") continue;
                sb.Append(" fp-").Append((spi + 1) * 8).Append('=');
                if (frame.Stack.IsFullSpill(spi)) sb.Append(Reg(frame.Stack.Spilled[spi], maps));
                else if (frame.Stack.IsIter(spi)) sb.Append(Iter(frame.Stack.Spilled[spi]));
                else sb.Append(kinds);
            }
            if (f < st.Frames.Count - 1) sb.Append(' ');
        }
        if (st.Refs.Count > 0) sb.Append(" refs=").Append(string.Join(",", st.Refs.Select(r => r.Id)));
        return sb.ToString();
    }

    /// <summary>The kernel's print of an iterator slot: <c>iter_num(ref_id=1,state=active,depth=0)</c>.</summary>
    static string Iter(in RegState it) =>
        $"iter_num(ref_id={it.RefObjId},state={(it.Iter == IterState.Active ? "active" : "drained")},depth={it.IterDepth})";

    public static string Reg(in RegState r, IReadOnlyList<MapInfo> maps)
    {
        if (r.Type == RegType.Scalar)
        {
            if (r.VarOff.IsConst) return ((long)r.VarOff.Value).ToString();
            return "scalar(" + string.Join(",", ScalarParts(r)) + ")";
        }
        if (r.Type == RegType.PtrToStack && r.VarOff.IsConst && r.Id == 0)
            return r.Frame > 0 ? $"fp[{r.Frame}]{r.Off}" : $"fp{r.Off}";
        var parts = new List<string>();
        if (r.Type is RegType.ConstPtrToMap or RegType.PtrToMapValue or RegType.PtrToMapValueOrNull or RegType.PtrToMapKey && r.Aux < maps.Count)
        {
            var m = maps[r.Aux];
            parts.Add($"map={m.Name},ks={m.KeySize},vs={m.ValueSize}");
        }
        if (r.Id != 0) parts.Add($"id={r.Id}");
        if (r.RefObjId != 0) parts.Add($"ref_obj_id={r.RefObjId}");
        if (r.Off != 0) parts.Add($"off={r.Off}");
        if (r.Type is RegType.PtrToMem or RegType.PtrToMemOrNull or RegType.PtrToArgMem or RegType.PtrToArgMemOrNull or RegType.PtrToRdonlyMem) parts.Add($"sz={r.Aux}");
        if (r.Type == RegType.PtrToPacket) parts.Add($"r={r.Aux}");
        if (!r.VarOff.IsConst) parts.AddRange(ScalarParts(r));
        string name = RegTypeNames.Name(r.Type) + (RegTypeNames.IsBtfId(r.Type) ? Checker.BtfName(r.Aux) : "");
        return name + "(" + string.Join(",", parts) + ")";
    }

    static IEnumerable<string> ScalarParts(RegState r)
    {
        // A copy linked with a delta prints as the kernel does: its base id and the signed delta (id=2+7, id=1-1).
        if (r.Id != 0 && r.Type == RegType.Scalar)
            yield return (r.Id & Checker.LinkedDelta) != 0 ? $"id={r.Id & ~Checker.LinkedDelta}{r.Off:+0;-0;+0}" : $"id={r.Id}";
        if (r.Smin != long.MinValue) yield return $"smin={r.Smin}";
        if (r.Smax != long.MaxValue) yield return $"smax={r.Smax}";
        if (r.Umin != 0) yield return $"umin={r.Umin}";
        if (r.Umax != ulong.MaxValue) yield return $"umax={r.Umax}";
        if (r.S32Min != int.MinValue) yield return $"smin32={r.S32Min}";
        if (r.S32Max != int.MaxValue) yield return $"smax32={r.S32Max}";
        if (r.U32Min != 0) yield return $"umin32={r.U32Min}";
        if (r.U32Max != uint.MaxValue) yield return $"umax32={r.U32Max}";
        if (!r.VarOff.IsUnknown) yield return $"var_off={r.VarOff}";
    }
}
