-- Binary packing needs no VM.
test("structs", function()
  local s = provium.pack("u16 i16 u32 u64", 1, -1, 7, "0xffffffffffffffff")
  assert_eq(16, #s)
  local a, b, c = provium.unpack("u16 i16 u32", s)
  assert_eq(1, a); assert_eq(-1, b); assert_eq(7, c)
  assert(not pcall(provium.pack, "u8", 256), "out of range is an error")
end)
