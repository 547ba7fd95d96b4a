-- A test that starts from the "prepared" fixture (tests/fixtures/prepared.lua).

local vm = provium.fixture("prepared")

test("the fixture's work is there", function()
	assert_eq("prepared\n", vm:read_file("/srv/data/state"))
end)

test("each resume is a VM of its own", function()
	vm:write_file("/srv/data/state", "changed\n")
	assert_eq("changed\n", vm:read_file("/srv/data/state"))
end)
